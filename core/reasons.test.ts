import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { describeError, SynclineError } from './errors.ts';
import { generatedReasonFiles } from './reasons-doc.ts';
import { isReason, REASON_FAMILIES, REASONS, reasonInfo, reasonKind } from './reasons.ts';

const ROOT = new URL('..', import.meta.url).pathname;
/** Shipped code: what reports reasons to users. */
const SCANNED = ['bin', 'connectors', 'core', 'crds', 'operator', 'plugin', 'runner'];
/** Test helpers beside the code (fakes, fixtures): their pods and answers carry Kubernetes' own reasons. */
const TEST_HELPER = /\/testdata\/|(^|\/)[^/]*(fake|fixture|testing|test-context)[^/]*\.ts$/;

/**
 * Reasons the operator writes on conditions and Normal Events that report no failure; they stay out of
 * the catalogue (it lists what went wrong), but a reason the scan finds must be one or the other.
 */
const NOT_ERRORS = new Set([
  'Checking',
  'Connected',
  'ConnectionSucceeded',
  'FirstRunInProgress',
  'Idle',
  'PartiallySucceeded',
  'Paused',
  'RunActive',
  'RunPartiallySucceeded',
  'RunSkipped',
  'RunStarted',
  'RunSucceeded',
  'Scheduled',
  'SegmentCounted',
  'SnapshotsDeleted',
  'SourceReady',
  'Succeeded',
  'WarehouseSnapshotDropped',
]);
/**
 * Entries the code does not use yet, each with where it is meant to be used. A reason stays here only
 * until that change lands (then remove it here).
 */
const AWAITING_USE: Record<string, string> = {};
/** Fragments of a family's reasons that the scan sees on their own (kubeapi.ts builds `KubeApi${reason}`). */
const FAMILY_PARTS = new Set(['HTTP*']);

interface Found {
  reason: string;
  at: string;
  /** A template (`${side}ConnectionFailed` → `*ConnectionFailed`) or a prefix test (`startsWith`). */
  pattern: boolean;
}

const CAMEL = /^[A-Z][A-Za-z0-9]+$/;
const isReasonName = (name: string | undefined) => name === 'reason' || /Reason$/.test(name ?? '');
const nameOf = (node: ts.Node | undefined): string | undefined => {
  if (!node) return undefined;
  if (ts.isIdentifier(node) || ts.isStringLiteral(node)) return node.text;
  if (ts.isPropertyAccessExpression(node)) return node.name.text;
  return undefined;
};

/**
 * Every reason the code reports, read from the source so that a reason passed through a `string` (which
 * the type check lets by) is seen where it is written: the first argument of `new SynclineError`, the
 * fallback of `describeError`, a `reason:` property or `reason` variable, an assignment or comparison to
 * one, the reasons of the operator's `stalled()`/`waiting()` verdicts and of the Events it sends. A
 * conditional or `??` is followed into each branch; a constant is followed to its string; a template is
 * kept as a pattern. Strings that are not CamelCase (a rejected row's message) are not reasons.
 */
function scanReasons(): Found[] {
  const files = execFileSync('git', ['ls-files', '-co', '--exclude-standard', ...SCANNED], {
    cwd: ROOT,
    encoding: 'utf8',
  })
    .split('\n')
    .filter((f) => /\.(ts|mjs)$/.test(f) && !f.endsWith('.test.ts') && !TEST_HELPER.test(f));
  const found: Found[] = [];
  for (const file of files) {
    let text: string;
    try {
      text = readFileSync(`${ROOT}${file}`, 'utf8');
    } catch {
      continue; // deleted in the working tree
    }
    const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
    const constants = new Map<string, string>();
    const findConstants = (node: ts.Node) => {
      if (ts.isVariableDeclaration(node) && ts.isIdentifier(node.name) && node.initializer) {
        if (ts.isStringLiteral(node.initializer)) constants.set(node.name.text, node.initializer.text);
      }
      ts.forEachChild(node, findConstants);
    };
    findConstants(source);
    const at = (node: ts.Node) =>
      `${file}:${source.getLineAndCharacterOfPosition(node.getStart(source)).line + 1}`;
    const take = (e: ts.Expression | undefined): void => {
      if (!e) return;
      if (ts.isParenthesizedExpression(e) || ts.isAsExpression(e) || ts.isSatisfiesExpression(e))
        return take(e.expression);
      if (ts.isConditionalExpression(e)) return (take(e.whenTrue), take(e.whenFalse));
      if (
        ts.isBinaryExpression(e) &&
        [ts.SyntaxKind.QuestionQuestionToken, ts.SyntaxKind.BarBarToken].includes(e.operatorToken.kind)
      )
        return (take(e.left), take(e.right));
      if (ts.isStringLiteral(e) || ts.isNoSubstitutionTemplateLiteral(e)) {
        if (CAMEL.test(e.text)) found.push({ reason: e.text, at: at(e), pattern: false });
        return;
      }
      if (ts.isTemplateExpression(e)) {
        const parts = [e.head.text, ...e.templateSpans.map((s) => s.literal.text)];
        if (/^[A-Za-z0-9]+$/.test(parts.join('')))
          found.push({ reason: parts.join('*'), at: at(e), pattern: true });
        return;
      }
      if (ts.isIdentifier(e) && CAMEL.test(constants.get(e.text) ?? ''))
        found.push({ reason: constants.get(e.text)!, at: at(e), pattern: false });
    };
    const visit = (node: ts.Node) => {
      if (ts.isNewExpression(node) && nameOf(node.expression) === 'SynclineError') take(node.arguments?.[0]);
      if (ts.isCallExpression(node)) {
        const callee = nameOf(node.expression);
        if (callee === 'describeError') take(node.arguments[1]);
        if (callee === 'stalled' || callee === 'waiting') take(node.arguments[0]);
        if ((callee === 'warning' || callee === 'normal') && ts.isPropertyAccessExpression(node.expression))
          take(node.arguments[1]);
        if (
          callee === 'startsWith' &&
          ts.isPropertyAccessExpression(node.expression) &&
          isReasonName(nameOf(node.expression.expression))
        ) {
          const prefix = node.arguments[0];
          if (prefix && ts.isStringLiteral(prefix))
            found.push({ reason: `${prefix.text}*`, at: at(prefix), pattern: true });
        }
      }
      if (ts.isPropertyAssignment(node) && isReasonName(nameOf(node.name))) take(node.initializer);
      if ((ts.isVariableDeclaration(node) || ts.isParameter(node)) && isReasonName(nameOf(node.name)))
        take(node.initializer);
      if (ts.isBinaryExpression(node)) {
        const op = node.operatorToken.kind;
        const assigns = [ts.SyntaxKind.EqualsToken, ts.SyntaxKind.QuestionQuestionEqualsToken].includes(op);
        const compares = [
          ts.SyntaxKind.EqualsEqualsEqualsToken,
          ts.SyntaxKind.ExclamationEqualsEqualsToken,
        ].includes(op);
        if ((assigns || compares) && isReasonName(nameOf(node.left))) take(node.right);
        if (compares && isReasonName(nameOf(node.right))) take(node.left);
      }
      ts.forEachChild(node, visit);
    };
    visit(source);
  }
  return found;
}

const catalogued = Object.keys(REASONS);
const families = Object.keys(REASON_FAMILIES);
const patternOf = (reason: string) => new RegExp(`^${reason.split('*').join('[A-Za-z0-9]+')}$`);

describe('the catalogue of reasons', () => {
  const found = scanReasons();

  it('finds the reasons in the code (the scan works)', () => {
    const names = new Set(found.map((f) => f.reason));
    for (const known of ['SourceQueryFailed', 'ModelNotReadOnly', 'InvalidRunnerResources', 'KubeApi*'])
      expect(names).toContain(known);
  });

  it('holds every reason the code reports', () => {
    const unknown = found
      .filter((f) => !f.pattern && !Object.hasOwn(REASONS, f.reason) && !NOT_ERRORS.has(f.reason))
      .filter((f) => !families.some((p) => f.reason.startsWith(p) && f.reason.length > p.length))
      .map((f) => `${f.reason} (${f.at})`);
    expect(
      unknown,
      'add these to core/reasons.ts (or, for a condition that is no failure, to NOT_ERRORS)',
    ).toEqual([]);
  });

  it('holds a reason for every reason the code builds or matches by pattern', () => {
    const unmatched = found
      .filter((f) => f.pattern && !FAMILY_PARTS.has(f.reason))
      .filter((f) => !families.some((p) => f.reason === `${p}*`))
      .filter((f) => !catalogued.some((r) => patternOf(f.reason).test(r)))
      .map((f) => `${f.reason} (${f.at})`);
    expect(unmatched).toEqual([]);
  });

  it('has no entry the code does not use', () => {
    const used = new Set(found.filter((f) => !f.pattern).map((f) => f.reason));
    const dead = catalogued.filter((r) => !used.has(r) && !Object.hasOwn(AWAITING_USE, r));
    expect(dead, 'remove these from core/reasons.ts, or use them').toEqual([]);
    const familiesUsed = families.filter((p) => found.some((f) => f.reason.startsWith(p)));
    expect(familiesUsed).toEqual(families);
  });

  it('gives each reason a kind and one line of documentation', () => {
    for (const [reason, info] of Object.entries({ ...REASONS, ...REASON_FAMILIES })) {
      expect(reason).toMatch(CAMEL);
      expect(['needsPerson', 'transient', 'rowRejected']).toContain(info.kind);
      expect(info.doc, reason).toMatch(/^\S.{20,240}\.$/);
      expect(info.doc, reason).not.toContain('\n');
    }
  });

  it('keeps the operator-facing rulings', () => {
    expect(reasonKind('LeaseHeld')).toBe('transient');
    expect(reasonKind('LeaseLost')).toBe('transient');
    expect(reasonKind('DiffStoreNotWritable')).toBe('needsPerson');
    expect(reasonKind('CapabilityProbeFailed')).toBe('transient');
    expect(reasonKind('UnsupportedDestination')).toBe('needsPerson');
    expect(reasonKind('RowsRejected')).toBe('rowRejected');
  });

  it('knows families and nothing else', () => {
    expect(reasonKind('KubeApiConflict')).toBe('transient');
    expect(isReason('KubeApiHTTP502')).toBe(true);
    expect(isReason('KubeApi')).toBe(false);
    expect(reasonInfo('NoSuchReason')).toBeUndefined();
    expect(reasonKind('toString')).toBeUndefined();
  });
});

describe('SynclineError', () => {
  it('is retryable when its reason is transient, unless the site says otherwise', () => {
    expect(new SynclineError('SourceUnreachable', 'x').retryable).toBe(true);
    expect(new SynclineError('SourceQueryFailed', 'x').retryable).toBe(false);
    expect(new SynclineError('DestinationWriteFailed', 'x').retryable).toBe(false);
    expect(new SynclineError('SourceQueryFailed', 'x', { retryable: true }).retryable).toBe(true);
    expect(new SynclineError('LeaseHeld', 'x', { retryable: false }).retryable).toBe(false);
    const passedThrough: string = 'NotInTheCatalogue';
    expect(new SynclineError(passedThrough, 'x').retryable).toBe(false);
  });

  it('is an Error with a reason, a message and a cause', () => {
    const cause = new Error('inner');
    const error = new SynclineError('InvalidModel', 'the model', { cause });
    expect(error).toBeInstanceOf(Error);
    expect(error).toBeInstanceOf(SynclineError);
    expect(error.name).toBe('SynclineError');
    expect(error.cause).toBe(cause);
    expect(describeError(error)).toEqual({ reason: 'InvalidModel', message: 'the model' });
  });

  it('rejects a reason that is not in the catalogue at compile time', () => {
    // @ts-expect-error: a typo of SourceQueryFailed
    expect(new SynclineError('SourceQueryFaild', 'x').reason).toBe('SourceQueryFaild');
    // @ts-expect-error: describeError's fallback is a reason too
    expect(describeError(new Error('x'), 'Oops').reason).toBe('Oops');
  });

  it('describes other thrown values with the fallback reason', () => {
    expect(describeError(new Error('boom'))).toEqual({ reason: 'InternalError', message: 'boom' });
    expect(describeError('text', 'CheckFailed')).toEqual({ reason: 'CheckFailed', message: 'text' });
  });
});

describe('generated reason docs', () => {
  it.each(generatedReasonFiles())('$name is up to date (run npm run generate:reasons)', ({ file, text }) => {
    expect(readFileSync(file, 'utf8')).toBe(text);
  });

  it('lists every reason in docs/reasons.md and the runbooks', () => {
    for (const { file } of generatedReasonFiles()) {
      const text = readFileSync(file, 'utf8');
      for (const reason of catalogued) expect(text, String(file)).toContain(`| \`${reason}\` |`);
    }
  });
});
