// Lint as Temporal's samples do: typescript-eslint, floating promises are errors, and workflow
// code may not import what would make it non-deterministic (Node built-ins, I/O, backends).
import { builtinModules } from 'node:module';
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', '.objinfer/**', 'test-output/**', 'coverage/**', '**/*.js', '**/*.cjs', '**/*.mjs'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: { parserOptions: { project: './tsconfig.test.json', tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: false }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      'object-shorthand': ['error', 'always'],
    },
  },
  {
    // Workflow code is replayed: it must not reach the world except through activities.
    files: ['src/workflows/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: [...builtinModules, ...builtinModules.map((m) => `node:${m}`)].map((name) => ({
            name,
            message: 'workflow code is deterministic: do this in an activity',
          })),
          patterns: [
            {
              group: ['**/backends/**', '**/activities/**', '**/images/**', '**/models/**', '@duckdb/*', 'sharp', 'onnxruntime-node', '@google-cloud/*'],
              message: 'workflows know nothing of backends: call an activity',
            },
            {
              group: ['@temporalio/activity', '@temporalio/worker', '@temporalio/client'],
              message: 'workflow code imports only @temporalio/workflow and @temporalio/common',
            },
          ],
        },
      ],
      'no-restricted-globals': [
        'error',
        { name: 'setTimeout', message: 'use sleep() from @temporalio/workflow' },
        { name: 'setInterval', message: 'use sleep() in a loop' },
        { name: 'process', message: 'workflow code has no process' },
      ],
    },
  },
);
