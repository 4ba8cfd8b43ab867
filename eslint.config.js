import js from '@eslint/js';
import tseslint from 'typescript-eslint';

// The layering (see core/README.md): crds <- core <- connectors <- runner; core <- operator; the generic
// controller runtime (operator/runtime) depends on nothing of Syncline but core. No shipped module imports
// test code. Tests sit beside what they test and may reach further (an engine test runs the runner).
const OUTSIDE = ['**/test/**', '**/bench/**', '**/plugin/**', '**/argocd/**', '**/charts/**'];
const layer = (files, forbidden, message) => ({
  files,
  ignores: ['**/*.test.ts'],
  rules: {
    'no-restricted-imports': ['error', { patterns: [{ group: [...forbidden, ...OUTSIDE], message }] }],
  },
});
const layering = [
  layer(
    ['crds/**/*.ts'],
    ['**/core/**', '**/connectors/**', '**/runner/**', '**/operator/**'],
    'crds/ depends on zod only.',
  ),
  layer(
    ['core/**/*.ts'],
    ['**/connectors/**', '**/runner/**', '**/operator/**'],
    'core/ depends on crds/ only.',
  ),
  layer(
    ['connectors/**/*.ts'],
    ['**/runner/**', '**/operator/**'],
    'connectors/ depend on core/ and crds/ only.',
  ),
  layer(['runner/**/*.ts'], ['**/operator/**'], 'runner/ does not depend on the operator.'),
  layer(
    ['operator/**/*.ts'],
    ['**/connectors/**', '**/runner/**'],
    'operator/ depends on core/ and crds/ only (it runs connectors in runner processes).',
  ),
  layer(
    ['operator/runtime/**/*.ts'],
    ['**/crds/**', '**/connectors/**', '**/runner/**', '../*.ts', '../[a-z]*/**'],
    'operator/runtime/ is a generic controller runtime: it depends on nothing of Syncline but core/.',
  ),
];

export default tseslint.config(
  { ignores: ['node_modules/**', '.syncline/**', 'coverage/**', 'charts/**', '**/dist/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: 'readonly', console: 'readonly' } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-empty': ['error', { allowEmptyCatch: false }],
    },
  },
  ...layering,
);
