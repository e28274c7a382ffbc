// Loaded with NODE_OPTIONS=--import into a CLI under test: at exit, writes the process's peak
// resident set size (KiB, process.resourceUsage().maxRSS) to $MOCTL_TEST_RSS_FILE.
import {writeFileSync} from 'node:fs'

const out = process.env.MOCTL_TEST_RSS_FILE
if (out) process.on('exit', () => writeFileSync(out, String(process.resourceUsage().maxRSS)))
