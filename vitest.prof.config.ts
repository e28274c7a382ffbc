import {mergeConfig} from 'vitest/config'
import base from './vitest.config.js'
export default mergeConfig(base, {test: {execArgv: ['--cpu-prof', '--cpu-prof-dir=/work/scratch/wprof', '--cpu-prof-interval=1000']}})
