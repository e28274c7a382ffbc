import oclif from 'eslint-config-oclif'
import prettier from 'eslint-config-prettier'

export default [
  {ignores: ['dist/', 'node_modules/', '.node24/', '.tmp/', 'bench/out/', 'oclif.manifest.json']},
  ...oclif,
  prettier,
  {
    // tsc (npm run typecheck) already checks every imported name: default, named and namespace
    // members. These import/ rules re-parse each imported module, node_modules included, for the
    // same answer, and took 57% of lint's time (24 of 42 s of rules here); typescript-eslint's
    // performance guidance is to leave them to TypeScript.
    files: ['**/*.ts'],
    rules: {
      'import/default': 'off',
      'import/named': 'off',
      'import/namespace': 'off',
      'import/no-named-as-default': 'off',
      'import/no-named-as-default-member': 'off',
    },
  },
  {
    // src/lib is the engine: it never knows about the CLI, so tests and other front ends reach it directly.
    files: ['src/lib/**/*.ts'],
    rules: {
      'n/no-process-exit': 'error',
      'no-console': 'error',
      'no-restricted-imports': [
        'error',
        {paths: [{message: 'src/lib must not depend on the CLI', name: '@oclif/core'}]},
      ],
    },
  },
  {
    // The backup flow reads as a script of small steps (issue 9): no function grows past 80 lines again.
    files: ['src/lib/backup/**/*.ts'],
    rules: {'max-lines-per-function': ['error', {max: 80, skipBlankLines: true, skipComments: true}]},
  },
  {
    // bin/run.js loads dist/, which `npm run build` writes; a clean clone lints before it builds.
    files: ['bin/**/*.js'],
    rules: {'import/no-unresolved': ['error', {ignore: [String.raw`^\.\./dist/`]}]},
  },
  {
    files: ['test/**/*.ts', 'bench/**/*.mjs', 'scripts/**/*.mjs'],
    rules: {
      // eslint-config-oclif assumes mocha; our tests are vitest, whose top-level hooks and
      // several suites per file are ordinary.
      'mocha/max-top-level-suites': 'off',
      'mocha/no-top-level-hooks': 'off',
      'n/no-process-exit': 'off',
      // fs.promises.cp works on Node 20 (marked experimental until 22.3); tests use it to copy repositories.
      'n/no-unsupported-features/node-builtins': ['error', {ignores: ['fs/promises.cp']}],
      'no-await-in-loop': 'off',
      // Tests flip bits to corrupt archives on purpose, and make reproducible noise.
      'no-bitwise': 'off',
      'unicorn/no-process-exit': 'off',
    },
  },
]
