// Writes the reasons table, generated from the catalogue (core/reasons.ts), into docs/reasons.md and
// between the markers of monitoring/runbooks.md. `npm run generate:reasons` (part of `npm run generate`);
// core/reasons.test.ts fails when either file is stale.
import { readFileSync, writeFileSync } from 'node:fs';
import { REASONS, REASON_FAMILIES, type ReasonInfo, type ReasonKind } from './reasons.ts';

export const BEGIN_MARKER =
  '<!-- reasons:begin (generated from core/reasons.ts by npm run generate:reasons) -->';
export const END_MARKER = '<!-- reasons:end -->';

const KIND_TITLE: Record<ReasonKind, string> = {
  needsPerson: 'needs a person',
  transient: 'transient',
  rowRejected: 'rows rejected',
};
const KIND_ORDER: ReasonKind[] = ['needsPerson', 'transient', 'rowRejected'];

type Entry = [name: string, info: ReasonInfo];
const entries = (): Entry[] => {
  const all: Entry[] = [
    ...Object.entries(REASONS as Record<string, ReasonInfo>),
    ...Object.entries(REASON_FAMILIES as Record<string, ReasonInfo>).map(([p, i]): Entry => [`${p}*`, i]),
  ];
  return all.sort(
    ([a, x], [b, y]) => KIND_ORDER.indexOf(x.kind) - KIND_ORDER.indexOf(y.kind) || a.localeCompare(b),
  );
};
const cell = (text: string) => text.replaceAll('|', '\\|');

/** The table: reason, kind, what happened and what to do; by kind, then alphabetically. */
export function renderReasonsTable(): string {
  const rows = entries().map(
    ([name, info]) => `| \`${name}\` | ${KIND_TITLE[info.kind]} | ${cell(info.doc)} |`,
  );
  return ['| reason | kind | what happened, and what to do |', '| --- | --- | --- |', ...rows].join('\n');
}

export function renderReasonsDoc(): string {
  const count = (kind: ReasonKind) => entries().filter(([, i]) => i.kind === kind).length;
  return `# Reasons

<!-- Generated from core/reasons.ts by npm run generate:reasons: edit the catalogue, not this file. -->

Every failure Syncline reports carries a stable CamelCase **reason**: on the \`Ready\` (and \`Stalled\`)
conditions of a Source, Model, Destination or Sync, on the Sync's \`status.lastRun\`, on Events, in run
summaries and in the logs. Reasons are a contract: alerts and runbooks match them, and a reason keeps its
spelling once it has shipped. The catalogue, with the kind of each reason, is
[\`core/reasons.ts\`](../core/reasons.ts); \`SynclineError\` only takes reasons from it.

| kind | what it means | how the operator shows it |
| --- | --- | --- |
| needs a person (${count('needsPerson')}) | only a change by a person fixes it: a resource, a credential, the model, the destination | \`Stalled=True\` with the reason, until the object changes |
| transient (${count('transient')}) | it may pass by itself | retried with backoff; \`Ready=False\` with the reason meanwhile |
| rows rejected (${count('rowRejected')}) | the destination rejected rows; each has its own reason in the run summary | the run goes on (\`PartiallySucceeded\`); the rows are sent again next run |

Reasons ending in \`*\` are families: \`KubeApi*\` carries the Kubernetes API's own reason (\`KubeApiConflict\`,
\`KubeApiForbidden\`, \`KubeApiHTTP502\`, ...).

The reasons of conditions that report no failure (\`Succeeded\`, \`PartiallySucceeded\`, \`Scheduled\`,
\`Paused\`, \`Idle\`, \`Checking\`, \`ConnectionSucceeded\`, \`SourceReady\`, ...) are not listed here.

${renderReasonsTable()}
`;
}

/** `text` with the table between the markers replaced; unchanged when it has no markers. */
export function withReasonsTable(text: string): string {
  const begin = text.indexOf(BEGIN_MARKER);
  const end = text.indexOf(END_MARKER);
  if (begin < 0 || end < begin) return text;
  return `${text.slice(0, begin + BEGIN_MARKER.length)}\n\n${renderReasonsTable()}\n\n${text.slice(end)}`;
}

const DOC = new URL('../docs/reasons.md', import.meta.url);
const RUNBOOKS = new URL('../monitoring/runbooks.md', import.meta.url);

/** Each generated file with the text it should hold. */
export function generatedReasonFiles(): { file: URL; name: string; text: string }[] {
  return [
    { file: DOC, name: 'docs/reasons.md', text: renderReasonsDoc() },
    {
      file: RUNBOOKS,
      name: 'monitoring/runbooks.md',
      text: withReasonsTable(readFileSync(RUNBOOKS, 'utf8')),
    },
  ];
}

if (import.meta.main) {
  for (const { file, name, text } of generatedReasonFiles()) {
    writeFileSync(file, text);
    console.log(`wrote ${name}`);
  }
}
