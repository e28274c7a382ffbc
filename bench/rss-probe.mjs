// Loaded with --import into a CLI under bench/memory.mjs: at exit, writes the process's peak
// resident set size (KiB, process.resourceUsage().maxRSS) to $MOCTL_TEST_RSS_FILE.
import {writeFileSync} from 'node:fs'

const out = process.env.MOCTL_TEST_RSS_FILE
if (out) process.on('exit', () => writeFileSync(out, String(process.resourceUsage().maxRSS)))
