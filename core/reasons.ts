// The catalogue of reasons: every reason Syncline reports (SynclineError reasons, the reasons of failed
// runs, the error reasons of the conditions and Warning Events the operator writes), once, with its kind
// and one line of documentation. Reasons are a public contract: status conditions, Events, metrics,
// alerts and runbooks carry them, so a reason keeps its spelling once it has shipped.
//
// `docs/reasons.md` and the reasons table of `monitoring/runbooks.md` are generated from this file
// (`npm run generate:reasons`); `core/reasons.test.ts` fails when they are stale, when code reports a
// reason that is not here, or when an entry here is used nowhere.

/**
 * - `needsPerson`: only a change by a person fixes it (a resource, a credential, the model, the
 *   destination); the operator sets Stalled=True.
 * - `transient`: it may pass by itself; retried with backoff (`retryable` by default), Ready=False meanwhile.
 * - `rowRejected`: rows were rejected (their reason is recorded per row) and the run went on; the rows stay
 *   different from the snapshot, so the next run sends them again.
 */
export type ReasonKind = 'needsPerson' | 'transient' | 'rowRejected';

export interface ReasonInfo {
  readonly kind: ReasonKind;
  /** One line: what happened, and what to do. */
  readonly doc: string;
}

const needsPerson = 'needsPerson';
const transient = 'transient';
const rowRejected = 'rowRejected';

export const REASONS = {
  // ── the run ───────────────────────────────────────────────────────────────────────────────────────
  Aborted: {
    kind: transient,
    doc: 'The run was stopped (SIGTERM, its deadline, a cancel) before it finished; what was confirmed is committed and the next run goes on.',
  },
  RunFailed: {
    kind: transient,
    doc: 'The last run failed without a reason of its own; read lastRun.message and the runner pod log.',
  },
  RunNotStarted: {
    kind: transient,
    doc: "The operator could not start the run's Job; the message says why, and the next reconcile tries again.",
  },
  RunnerFailed: {
    kind: transient,
    doc: 'The runner exited without a run summary (a crash); read the runner pod log. The next run starts over from the last commit.',
  },
  JobFailed: {
    kind: transient,
    doc: "The run's Job failed before its pod reported anything; see kubectl describe job.",
  },
  JobDeleted: {
    kind: transient,
    doc: "The run's Job was deleted while it ran; the next run sends again whatever may not have arrived.",
  },
  DeadlineExceeded: {
    kind: transient,
    doc: 'The run took longer than spec.runner.activeDeadlineSeconds; progress up to the last checkpoint is kept. Raise the deadline if it recurs.',
  },
  OOMKilled: {
    kind: needsPerson,
    doc: 'The runner ran out of memory; raise spec.runner.resources.limits.memory.',
  },
  Evicted: {
    kind: transient,
    doc: 'The runner pod was evicted (node pressure); the next run goes on. Give it ephemeral-storage requests if it recurs.',
  },
  Unschedulable: {
    kind: transient,
    doc: 'No node can take the runner pod yet (resources, taints, quotas); it starts when one can, else lower the requests.',
  },
  ImagePullFailed: {
    kind: needsPerson,
    doc: 'The runner image cannot be pulled; check the image name, tag and pull secrets of the chart.',
  },
  InvalidImageName: {
    kind: needsPerson,
    doc: 'The runner image name is invalid; fix image.repository/image.tag in the chart values.',
  },
  ContainerConfigError: {
    kind: needsPerson,
    doc: 'The runner container cannot be configured (a missing Secret or ConfigMap key it refers to); create it.',
  },
  ContainerStartFailed: {
    kind: needsPerson,
    doc: 'The runner container could not start; see kubectl describe pod for the cause.',
  },
  InternalError: {
    kind: needsPerson,
    doc: 'An unexpected error (a bug); the message says where. Please report it with the runner log.',
  },
  InvalidRunPlan: {
    kind: needsPerson,
    doc: 'The run plan is missing, not JSON, or invalid for this runner; run operator and runner of one version.',
  },
  InvalidSpec: {
    kind: needsPerson,
    doc: "A resource's spec does not match the schema the operator expects; fix the field the message names.",
  },
  InvalidRunId: {
    kind: needsPerson,
    doc: 'A run id holds characters a diff-store path may not; use letters, digits, ., _ and - (up to 128).',
  },
  // ── primary key and the model's rows ──────────────────────────────────────────────────────────────
  PrimaryKeyMissing: {
    kind: needsPerson,
    doc: "The Model names no primary key (or the dbt model declares none); set the Model's spec.primaryKey.",
  },
  PrimaryKeyChanged: {
    kind: needsPerson,
    doc: "The Model's primary key column changed, so rows cannot be matched with what was sent; request a full resync.",
  },
  NullPrimaryKey: {
    kind: needsPerson,
    doc: 'Rows of the model have a null primary key; fix the model (or let the Sync skip them).',
  },
  DuplicatePrimaryKey: {
    kind: needsPerson,
    doc: 'Primary-key values occur more than once in the model; make the key unique (or let the Sync skip them).',
  },
  SafetyRailTripped: {
    kind: needsPerson,
    doc: 'The run would delete or clear more than the allowed share of what the Sync has sent; check the model, then allow it on the Sync.',
  },
  UnknownColumn: {
    kind: needsPerson,
    doc: 'A mapping or template reads a column the model does not have; fix the mapping or the model.',
  },
  InvalidMapping: {
    kind: needsPerson,
    doc: "A mapping's value is invalid (e.g. not JSON); fix spec.mappings.",
  },
  // ── model ─────────────────────────────────────────────────────────────────────────────────────────
  InvalidModel: {
    kind: needsPerson,
    doc: 'The Model is not complete for its Source (query, table or dbt); fix the Model spec.',
  },
  // ── segments (audiences, docs/audiences.md) ───────────────────────────────────────────────────────
  UnknownSegmentColumn: {
    kind: needsPerson,
    doc: "A segment's condition names a column its Model does not list in spec.filterable; fix the condition or add the column there.",
  },
  UnknownRelationship: {
    kind: needsPerson,
    doc: "A segment's related condition names a relationship the parent Model does not declare in spec.relationships; fix the name or declare it.",
  },
  SegmentNotFound: {
    kind: needsPerson,
    doc: "A segment's parent, inSegment or relationship names a Model that does not exist in the namespace; create it or fix the name.",
  },
  SegmentCycle: {
    kind: needsPerson,
    doc: 'Segments refer to each other in a circle (parent or inSegment); break the circle.',
  },
  SegmentTooDeep: {
    kind: needsPerson,
    doc: 'A segment of a segment of ... goes deeper than the operator allows (3), or inSegment nests too deep; point the segment at a Model nearer its root.',
  },
  SegmentCountFailed: {
    kind: transient,
    doc: "Counting a segment Model's members for its size preview failed on its Source (the message says why); the preview is counted again when the definition changes, and by each run of a Sync of it.",
  },
  InvalidSegment: {
    kind: needsPerson,
    doc: 'A segment cannot be compiled (a value of the wrong type for its column, a parent on another Source or of a kind segments cannot read); the message says which; fix spec.segment.',
  },
  ModelNotFound: {
    kind: needsPerson,
    doc: "No Model of that name in the namespace (a Sync's spec.modelRef, kubectl syncline); create it or fix the name.",
  },
  ModelNotReady: {
    kind: transient,
    doc: "The Sync's Model is not Ready yet; it resolves when the Model does (see its conditions).",
  },
  ModelNotReadOnly: {
    kind: needsPerson,
    doc: 'The model is not a single read-only SELECT; rewrite it as one SELECT.',
  },
  // ── dbt ───────────────────────────────────────────────────────────────────────────────────────────
  DbtManifestUnreadable: {
    kind: needsPerson,
    doc: 'The dbt manifest cannot be read from its location; check dbt.manifest and the credentials to it.',
  },
  DbtModelNotFound: {
    kind: needsPerson,
    doc: 'The dbt manifest has no such (enabled) model; check dbt.model and that the manifest is current.',
  },
  DbtModelAmbiguous: {
    kind: needsPerson,
    doc: 'The dbt model name matches several nodes; qualify it with its package (or version).',
  },
  DbtModelNotMaterialized: {
    kind: needsPerson,
    doc: 'The dbt model is ephemeral (no table or view to read); materialise it as a view or table.',
  },
  DbtCompositeUniqueKey: {
    kind: needsPerson,
    doc: 'The dbt model declares a composite unique key; add a single surrogate key column and name it.',
  },
  DbtAdapterMismatch: {
    kind: needsPerson,
    doc: "The dbt manifest was built for another warehouse than the Model's Source; point the Model at the right Source.",
  },
  DbtUnsupportedSource: {
    kind: needsPerson,
    doc: 'dbt models cannot be read from this Source type; use a warehouse Source.',
  },
  // ── source ────────────────────────────────────────────────────────────────────────────────────────
  BiQuestionNotFound: {
    kind: needsPerson,
    doc: 'The Metabase question or Looker Look/query a Model names does not exist (or was archived/deleted); fix spec.metabase.question or spec.looker, or restore it in the BI tool.',
  },
  BiQuestionUnsupported: {
    kind: needsPerson,
    doc: 'The BI question cannot be read as a model (a template tag without a default, a question of no SQL database); give the tag a default in the BI tool or use as: results.',
  },
  BiDatabaseMismatch: {
    kind: needsPerson,
    doc: "The question's SQL targets another database (Metabase database / Looker connection) than the Model's Source; point spec.sourceRef at that database, or use as: results.",
  },
  BiResultsIncomplete: {
    kind: needsPerson,
    doc: "The BI tool's results were cut short (its row or download limit, or a stream that ended early); nothing was synced. Raise the limit in the BI tool, or use as: sql.",
  },
  InvalidSource: {
    kind: needsPerson,
    doc: 'The Source lacks its type block or a required setting; fix the Source spec.',
  },
  UnsupportedSource: {
    kind: needsPerson,
    doc: 'This connector type cannot be used as a Source; pick a source type.',
  },
  SourceNotFound: {
    kind: needsPerson,
    doc: "No Source of that name in the namespace (a Model's spec.sourceRef, kubectl syncline); create it or fix the name.",
  },
  SourceNotReady: {
    kind: transient,
    doc: "The Model's Source is not Ready yet; it resolves when the Source's connection check passes.",
  },
  SourceUnreachable: {
    kind: transient,
    doc: 'The source database cannot be reached (DNS, refused, timeout); retried. Check host, port and network policies if it persists.',
  },
  SourceConnectionFailed: {
    kind: needsPerson,
    doc: 'The source database refused the connection; the message carries its error code.',
  },
  SourceQueryFailed: {
    kind: needsPerson,
    doc: 'The model query failed in the source; the message carries the database error. Fix the query or the grants.',
  },
  SourceAccessDenied: {
    kind: needsPerson,
    doc: 'The model query read something it may not (a file outside the Source, a URL); read only the Source.',
  },
  SourceFileUnreadable: {
    kind: needsPerson,
    doc: 'A source file cannot be read (format, encoding, a broken line); fix the file or files.format.',
  },
  PathNotFound: {
    kind: needsPerson,
    doc: 'The folder or files of files.url do not exist, or it names a file; fix files.url.',
  },
  UnknownFileFormat: {
    kind: needsPerson,
    doc: 'The file format cannot be told from the extension; set files.format.',
  },
  UnsupportedLocation: {
    kind: needsPerson,
    doc: 'The URL is not a supported location; use a local path, file://, s3:// or gs://.',
  },
  AuthenticationFailed: {
    kind: needsPerson,
    doc: 'The database or service refused the credentials; check the user and the password or key Secret.',
  },
  InvalidCredentials: {
    kind: needsPerson,
    doc: 'A credential Secret holds something that is not a valid key (e.g. not a service-account JSON); replace it.',
  },
  PermissionDenied: {
    kind: needsPerson,
    doc: 'The credentials lack a permission (e.g. BigQuery Job User, Data Viewer); grant it.',
  },
  DatabaseNotFound: {
    kind: needsPerson,
    doc: 'The database does not exist, or the user may not use it; check the database name and grants.',
  },
  AccountNotFound: {
    kind: needsPerson,
    doc: 'The Snowflake account identifier is wrong; use the orgname-accountname form.',
  },
  WarehouseNotFound: {
    kind: needsPerson,
    doc: 'The Snowflake warehouse does not exist or the role cannot use it; GRANT USAGE ON WAREHOUSE.',
  },
  WarehouseSuspended: {
    kind: needsPerson,
    doc: 'The Snowflake warehouse is suspended and does not resume by itself; resume it or enable AUTO_RESUME.',
  },
  TlsVerificationFailed: {
    kind: needsPerson,
    doc: "The server's TLS certificate could not be verified; provide the CA in tls.caCert, or use tls.mode require.",
  },
  SftpHostKeyMismatch: {
    kind: needsPerson,
    doc: "The SFTP server's host key is not the pinned sftp.hostKey (nothing was sent to it); pin the server's new key if it changed on purpose, else find out what answers at that address.",
  },
  // ── destination ───────────────────────────────────────────────────────────────────────────────────
  InvalidDestination: {
    kind: needsPerson,
    doc: 'The Destination lacks its type block or a required setting; fix the Destination spec.',
  },
  UnsupportedDestination: {
    kind: needsPerson,
    doc: 'This connector type cannot be used as a Destination, or is not available in this build; pick a destination type.',
  },
  UnknownConnector: {
    kind: needsPerson,
    doc: 'No connector has this type (or this build lacks it); fix spec.type.',
  },
  ConnectorLoadFailed: {
    kind: needsPerson,
    doc: "A connector's module failed to load in this image; run an image of a matching version.",
  },
  CapabilityProbeFailed: {
    kind: transient,
    doc: "The operator's probe of a destination type's capabilities failed (timeout, crash); retried, so it clears by itself.",
  },
  DestinationNotFound: {
    kind: needsPerson,
    doc: "No Destination of that name in the namespace (a Sync's spec.destinationRef, kubectl syncline); create it or fix the name.",
  },
  DestinationNotReady: {
    kind: transient,
    doc: "The Sync's Destination is not Ready yet; it resolves when the Destination's connection check passes.",
  },
  DestinationUnreachable: {
    kind: transient,
    doc: 'The destination cannot be reached (DNS, refused, timeout); retried. Check the URL and network policies if it persists.',
  },
  DestinationConnectionFailed: {
    kind: needsPerson,
    doc: 'The destination database refused the connection; the message carries its error code.',
  },
  UnsupportedMode: {
    kind: needsPerson,
    doc: "The destination type does not support the Sync's mode; pick one it supports.",
  },
  UnsupportedDeleteBehavior: {
    kind: needsPerson,
    doc: "The destination type does not support the Sync's deleteBehavior; pick one it supports.",
  },
  MissingTarget: {
    kind: needsPerson,
    doc: 'The destination type needs spec.target (e.g. target.table) on the Sync; name what to write.',
  },
  SchemaNotFound: {
    kind: needsPerson,
    doc: 'The destination database has no such schema; create it or change postgres.schema.',
  },
  DestinationTableMissing: {
    kind: needsPerson,
    doc: 'The destination table does not exist and could not be created; create it or grant CREATE.',
  },
  UnknownDestinationColumn: {
    kind: needsPerson,
    doc: 'A mapping writes a column the destination table lacks; add the column or change the mappings.',
  },
  DestinationKeyNotUnique: {
    kind: needsPerson,
    doc: 'The destination column matched by the primary key has no primary key or unique index; add one.',
  },
  PrimaryKeyNotMapped: {
    kind: needsPerson,
    doc: 'The primary key column is not mapped to a destination column; map it (it is the conflict key).',
  },
  ArchiveColumnMissing: {
    kind: needsPerson,
    doc: 'Mode archive needs the archive timestamp column in the table; add it, or use archiveBehavior delete.',
  },
  ReservedField: {
    kind: needsPerson,
    doc: 'A field name is reserved by the destination (e.g. the files envelope); rename the mapping.',
  },
  InvalidTemplate: {
    kind: needsPerson,
    doc: 'A URL or body template is not valid Liquid or uses an unknown variable; fix the template.',
  },
  PathNotWritable: {
    kind: needsPerson,
    doc: 'The destination folder cannot be written; let the runner write it or pick another.',
  },
  DestinationWriteFailed: {
    kind: rowRejected,
    doc: 'The destination did not take a write; the rows are rejected with the error and sent again next run.',
  },
  DestinationCloseFailed: {
    kind: rowRejected,
    doc: 'The destination failed to confirm the writes at close; every row of the run counts as rejected and is sent again next run.',
  },
  DeliveryFailed: {
    kind: rowRejected,
    doc: 'A batch failed in the destination connector; its rows are rejected with the error and sent again next run.',
  },
  DailyLimitReached: {
    kind: rowRejected,
    doc: "The destination API's daily request quota is spent: delivery stopped for this run and the rows not sent stay pending for the next run; raise the quota or run less often.",
  },
  UnknownObject: {
    kind: needsPerson,
    doc: "The Sync's target.object is not an object of the destination (HubSpot object type, custom object name); fix target.object.",
  },
  UnknownField: {
    kind: needsPerson,
    doc: 'A mapping or target.matchField names a field the destination object lacks; the message lists the closest names. Fix the mapping or create the field.',
  },
  ReadOnlyField: {
    kind: needsPerson,
    doc: 'A mapping writes a field the destination computes or keeps read-only (a formula, a system field); remove the mapping or map another field.',
  },
  MatchFieldNotUnique: {
    kind: needsPerson,
    doc: "The Sync's target.matchField (or an association's matchField) is not a unique field or external id of the object, so rows cannot be matched to records; make the field unique in the tool or match by another.",
  },
  MatchFieldRequired: {
    kind: needsPerson,
    doc: "The Sync's mode matches rows to records by target.matchField (HubSpot and Salesforce upsert and update), and it names none; set it to a unique field of the object (the message lists the discovered ones) and map that field.",
  },
  IncompatibleFieldType: {
    kind: needsPerson,
    doc: "A mapping sends a Model column none of whose values the destination converts to the field's type (a boolean into a date, a timestamp into a number); every row would be rejected. Cast the column in the Model or map another field.",
  },
  InvalidFieldValue: {
    kind: needsPerson,
    doc: "A mapping's static value is not one of the options the destination's enumeration (picklist) field accepts; use one of the options the message lists.",
  },
  RequiredFieldUnmapped: {
    kind: needsPerson,
    doc: 'A Warning Event: a field the destination object requires is written by no mapping of an insert Sync; map it, unless the tool fills it itself.',
  },
  DestinationObjectsUnknown: {
    kind: transient,
    doc: "The Destination's objects and fields have not been discovered for the Sync's target.object yet: a connection check that discovers them is due, and the Sync is validated and runs after it.",
  },
  DestinationBusy: {
    kind: transient,
    doc: "The Destination's rateLimit.maxConcurrentRuns runs of other Syncs are active (default 1 for tools with a shared API quota): the due run waits and starts when one ends. Raise maxConcurrentRuns if the quota allows.",
  },
  RowsRejected: {
    kind: rowRejected,
    doc: 'The destination rejected some rows (each with its reason in the run summary); fix the rows or the mappings, the next run retries them.',
  },
  // ── diff store and blob storage ───────────────────────────────────────────────────────────────────
  InvalidDiffStoreUrl: {
    kind: needsPerson,
    doc: 'The diff-store URL is invalid; use s3://bucket/prefix, gs://bucket/prefix or file:///path.',
  },
  DiffStoreOutsideNamespace: {
    kind: needsPerson,
    doc: "spec.diffStore.url is outside the namespace's part of the diff store; use the folder the message names.",
  },
  InvalidDiffStorePath: {
    kind: needsPerson,
    doc: 'A namespace or Sync name cannot name a diff-store folder; use a valid Kubernetes name.',
  },
  DiffStoreBucketNotFound: {
    kind: needsPerson,
    doc: 'The diff-store bucket does not exist; create it or fix the diff-store URL.',
  },
  DiffStoreNotWritable: {
    kind: needsPerson,
    doc: 'The runner may not write the diff store (the run lease); let its credentials write the prefix.',
  },
  DiffStoreCorrupt: {
    kind: needsPerson,
    doc: 'A manifest, snapshot or record in the diff store cannot be read; request a full resync.',
  },
  DiffStoreUnknown: {
    kind: needsPerson,
    doc: 'The plugin cannot tell where the operator keeps snapshots; pass --diff-store.',
  },
  SnapshotMissing: {
    kind: needsPerson,
    doc: 'The current snapshot is missing from the diff store; request a full resync.',
  },
  SnapshotInUse: {
    kind: needsPerson,
    doc: 'A run id that already committed was used again; every run needs a new run id.',
  },
  ConcurrentCommit: {
    kind: transient,
    doc: 'Another run of the Sync committed first; this run was not recorded and the next run diffs against the other.',
  },
  WarehouseSnapshotUnsupported: {
    kind: needsPerson,
    doc: 'The Sync keeps its snapshot in the warehouse (spec.snapshot.location: warehouse), which its Source cannot (postgres on PostgreSQL 14+, snowflake and bigquery Sources can); use location diffStore.',
  },
  SnapshotMoved: {
    kind: transient,
    doc: "A run succeeded after moving the Sync's snapshot between the diff store and the warehouse (spec.snapshot.location of the Sync or its Source changed); nothing was sent again.",
  },
  WarehouseSnapshotLost: {
    kind: transient,
    doc: "A run succeeded after finding its warehouse snapshot gone (schema or state table dropped): it sent every row and deleted keys missing from the diff store's last snapshot. If it recurs, set spec.snapshot.location: diffStore.",
  },
  WarehouseSnapshotGrantMissing: {
    kind: needsPerson,
    doc: "The Source's user lacks a grant the warehouse snapshot needs (the message names it and the GRANT that gives it); grant it, or use spec.snapshot.location: diffStore.",
  },
  LeaseHeld: {
    kind: transient,
    doc: 'Another run of the Sync holds the run lease; this run starts again later.',
  },
  LeaseLost: {
    kind: transient,
    doc: 'The run lease was lost (not renewed in time, or taken); this run stopped before its next commit and is retried.',
  },
  SnapshotCleanupFailed: {
    kind: transient,
    doc: "The operator could not delete a deleted Sync's snapshots; it retries, then gives up (SnapshotCleanupAbandoned).",
  },
  SnapshotCleanupAbandoned: {
    kind: needsPerson,
    doc: "The operator gave up deleting a deleted Sync's snapshots; delete the folder the Event names by hand.",
  },
  SnapshotCleanupRefused: {
    kind: needsPerson,
    doc: 'The operator deleted nothing for a deleted Sync (its diff-store URL is invalid or outside the namespace); clean up by hand.',
  },
  InvalidStorageUrl: {
    kind: needsPerson,
    doc: 'A storage URL is invalid; use s3://bucket/prefix, gs://bucket/prefix or file:///absolute/path.',
  },
  InvalidStoragePath: {
    kind: needsPerson,
    doc: 'An object path is not valid under its store (absolute, or with ..); a bug: please report it.',
  },
  InvalidStorageCredentials: {
    kind: needsPerson,
    doc: 'The storage credentials are malformed (e.g. a service-account key that is not JSON); fix the Secret.',
  },
  StorageBucketNotFound: {
    kind: needsPerson,
    doc: 'The bucket does not exist; create it or fix the URL.',
  },
  StorageAccessDenied: {
    kind: needsPerson,
    doc: 'The storage credentials may not read or write there (or the file system is read-only); grant access.',
  },
  StorageUnreachable: {
    kind: transient,
    doc: 'The storage endpoint cannot be reached; retried. Check the endpoint and the network path to it if it persists.',
  },
  StorageError: {
    kind: transient,
    doc: 'A storage operation failed (5xx, a lost lock, an unexpected answer); retried where it can be. The message carries the detail.',
  },
  PreconditionFailed: {
    kind: transient,
    doc: 'An object changed between read and conditional write (another writer); read it again, the caller retries.',
  },
  // ── secrets ───────────────────────────────────────────────────────────────────────────────────────
  SecretNotFound: {
    kind: needsPerson,
    doc: 'A secretKeyRef names a Secret or key that does not exist; create it (kubectl create secret generic ...).',
  },
  EmptySecret: {
    kind: needsPerson,
    doc: 'A secretKeyRef resolves to an empty value; put the credential in the Secret.',
  },
  SecretsFileUnreadable: {
    kind: needsPerson,
    doc: 'The secrets file (CLI) cannot be read; check --secrets-file.',
  },
  SecretsFileInvalid: {
    kind: needsPerson,
    doc: 'The secrets file (CLI) is not YAML mapping Secret names to key/value maps; fix it.',
  },
  SecretsUnavailable: {
    kind: needsPerson,
    doc: 'kubectl syncline plan needs credentials it may not read; provide them as the message lists.',
  },
  // ── Sync, references and schedule (operator) ──────────────────────────────────────────────────────
  DependencyNotFound: {
    kind: needsPerson,
    doc: 'A Sync named in spec.dependsOn does not exist; create it or remove it from dependsOn.',
  },
  DependencyCycle: {
    kind: needsPerson,
    doc: 'spec.dependsOn forms a cycle (or names the Sync itself); break it.',
  },
  SequenceStepNotFound: {
    kind: needsPerson,
    doc: 'A step of a Sequence names a Sync that does not exist in its namespace; create the Sync or fix spec.steps[].sync.',
  },
  SequenceStepRunLost: {
    kind: transient,
    doc: 'The Sync no longer knows the run a Sequence step requested (past its historyLimit, or recreated); the sequence run failed, the next one asks again.',
  },
  InvalidSchedule: {
    kind: needsPerson,
    doc: 'spec.schedule cannot be parsed or evaluated; fix the interval or cron expression.',
  },
  InvalidTimeZone: {
    kind: needsPerson,
    doc: 'spec.schedule.timeZone is not an IANA time zone; use one like Europe/Paris.',
  },
  InvalidRunnerResources: {
    kind: needsPerson,
    doc: 'spec.runner.resources holds a value that is not a Kubernetes quantity; fix it.',
  },
  RunnerResourcesAboveMaximum: {
    kind: needsPerson,
    doc: 'spec.runner.resources asks more than the operator allows; lower it, or ask an administrator to raise the maximum.',
  },
  RunnerDeadlineAboveMaximum: {
    kind: needsPerson,
    doc: 'spec.runner.activeDeadlineSeconds is above the maximum the operator allows; lower it, or ask an administrator.',
  },
  // ── connection checks (Source, Destination) ───────────────────────────────────────────────────────
  ConnectionFailed: {
    kind: needsPerson,
    doc: 'The connection check failed without a reason of its own; read the check pod log.',
  },
  CheckFailed: {
    kind: transient,
    doc: 'The connection check crashed before it answered; it runs again. Read the check pod log if it recurs.',
  },
  CheckNotStarted: {
    kind: needsPerson,
    doc: 'The operator could not start the connection check Job; the message says why.',
  },
  // ── Kubernetes API (operator, plugin) ─────────────────────────────────────────────────────────────
  KubeApiUnreachable: {
    kind: transient,
    doc: 'The Kubernetes API server cannot be reached; retried with backoff.',
  },
  KubeApiError: {
    kind: transient,
    doc: 'The Kubernetes API answered an error (kubectl syncline); the message carries its status.',
  },
  KubeWatchCorrupt: {
    kind: transient,
    doc: 'A watch stream sent a line that is not JSON; the watch is reopened.',
  },
  KubeConfigInvalid: {
    kind: needsPerson,
    doc: 'The kubeconfig cannot be read or has no current cluster; fix KUBECONFIG or pass --kubeconfig.',
  },
  NoCluster: {
    kind: needsPerson,
    doc: 'The kubeconfig has no current cluster (kubectl syncline); set KUBECONFIG or pass --kubeconfig/--context.',
  },
  ContextNotFound: {
    kind: needsPerson,
    doc: 'The kubeconfig has no such context (kubectl syncline); kubectl config get-contexts lists them.',
  },
  CrdsNotInstalled: {
    kind: needsPerson,
    doc: 'The syncline.io resources are not installed in the cluster; install the Helm chart.',
  },
  Unauthorized: {
    kind: needsPerson,
    doc: 'The API server did not accept your credentials (kubectl syncline); log in again.',
  },
  Forbidden: {
    kind: needsPerson,
    doc: "You may not do this (kubectl syncline, the run API, the console); ask for the chart's syncline-view, syncline-edit or syncline-trigger role.",
  },
  SyncNotFound: {
    kind: needsPerson,
    doc: 'No Sync of that name (CLI, kubectl syncline, the run API); check the name and namespace.',
  },
  RunNotFound: {
    kind: needsPerson,
    doc: "No record of that run (in the diff store, or in the Sync's history for the run API); the message says where to look.",
  },
  PlanFailed: {
    kind: needsPerson,
    doc: 'kubectl syncline plan could not compute what the next run would send; the message says why.',
  },
  ConfirmationRequired: {
    kind: needsPerson,
    doc: 'The command changes something and there is no terminal to ask; pass --yes.',
  },
  NotConfirmed: {
    kind: needsPerson,
    doc: 'You did not confirm; nothing was changed.',
  },
  // ── run API, webhooks and console (operator) ──────────────────────────────────────────────────────
  Unauthenticated: {
    kind: needsPerson,
    doc: 'The run API got no bearer token, or one the API server does not accept (expired, another cluster); send a valid Kubernetes token.',
  },
  InvalidRequest: {
    kind: needsPerson,
    doc: 'The request is malformed (its body, a parameter, a header); the message names what to fix.',
  },
  IdempotencyKeyReused: {
    kind: needsPerson,
    doc: 'An Idempotency-Key came back with a different request; use a new key for a new request.',
  },
  RequestConflict: {
    kind: transient,
    doc: 'The Sync changed again and again while a run was requested; try the request again.',
  },
  RateLimited: {
    kind: transient,
    doc: 'Too many requests from this caller; wait as Retry-After says.',
  },
  CrossSiteRequest: {
    kind: needsPerson,
    doc: 'A browser sent a request that changes something from a page of another site; use the console itself, or call the API from a pipeline.',
  },
  RouteNotFound: {
    kind: needsPerson,
    doc: 'The operator serves no such path; the API is documented in docs/api/openapi.yaml.',
  },
  BodyTooLarge: {
    kind: needsPerson,
    doc: 'The request body is larger than the API or webhook accepts; send a smaller one.',
  },
  UnsupportedMediaType: {
    kind: needsPerson,
    doc: 'The request body is not application/json; send JSON.',
  },
  WebhookNotFound: {
    kind: needsPerson,
    doc: 'A delivery came to /webhooks/v1/<name> for a name the operator has no --webhook for; fix the URL in the sender, or add the webhook (chart api.webhooks).',
  },
  WebhookSignatureInvalid: {
    kind: needsPerson,
    doc: "A webhook delivery's signature is missing or is not the HMAC-SHA256 of its body under the webhook's secret; give the operator the secret the sender shows (SYNCLINE_WEBHOOK_SECRET_<NAME>).",
  },
  WebhookPayloadInvalid: {
    kind: needsPerson,
    doc: 'A correctly signed webhook delivery is not a dbt Cloud or Fivetran event (not JSON, or a field missing); check that the webhook has the right type.',
  },
  WebhookEventIgnored: {
    kind: needsPerson,
    doc: "A valid webhook delivery started no run: another event type, a result no trigger's results list, or no Sync with a trigger for its job or connector; if a run was expected, check the Syncs' spec.schedule.triggers.",
  },
  WebhookSecretMissing: {
    kind: needsPerson,
    doc: 'A --webhook has no secret in SYNCLINE_WEBHOOK_SECRET_<NAME>; the operator does not start without it (the chart fills it from api.webhooks[].secretRef).',
  },
  ConsoleNotBuilt: {
    kind: needsPerson,
    doc: 'The operator serves no web console: operator/console/dist/ is missing; run npm run build:console (the image builds it).',
  },
  RunRecordUnreadable: {
    kind: transient,
    doc: "The console could not read a run's record from the diff store (unreachable, a credential, a corrupt file); the message says why.",
  },
  // ── command line and resources files ──────────────────────────────────────────────────────────────
  InvalidFlag: {
    kind: needsPerson,
    doc: 'A command-line flag has an invalid value; the message shows the form it takes.',
  },
  ResourcesNotFound: {
    kind: needsPerson,
    doc: 'The -f folder cannot be read or holds no YAML files; point -f at the resources.',
  },
  InvalidYaml: {
    kind: needsPerson,
    doc: 'A resources file is not valid YAML; fix the line the message names.',
  },
  YamlAliasLimit: {
    kind: needsPerson,
    doc: 'YAML aliases expand to too many nodes (an alias bomb?); write the values out.',
  },
  InvalidResources: {
    kind: needsPerson,
    doc: 'Resources in the folder fail the checks the API server and the operator make; fix each problem listed.',
  },
  NoSyncs: {
    kind: needsPerson,
    doc: 'The folder holds no Sync; add one.',
  },
  InvalidReference: {
    kind: needsPerson,
    doc: 'A Sync references resources that are not in the folder; add them or fix the names.',
  },
  ConfigMapNotFound: {
    kind: needsPerson,
    doc: 'A ConfigMap key a resource refers to is not among the resources; add the ConfigMap manifest.',
  },
} as const satisfies Record<string, ReasonInfo>;

/**
 * Families of reasons built from another system's: `KubeApi<StatusReason>` (e.g. KubeApiConflict,
 * KubeApiNotFound, KubeApiHTTP502) carries the Kubernetes API's own reason. Their errors say whether they are
 * retryable (429 and 5xx are).
 */
export const REASON_FAMILIES = {
  KubeApi: {
    kind: transient,
    doc: "The Kubernetes API answered an error (KubeApi + the API's reason, e.g. KubeApiConflict); the operator retries with backoff. Check the operator's RBAC if it is KubeApiForbidden.",
  },
} as const satisfies Record<string, ReasonInfo>;

export type CataloguedReason = keyof typeof REASONS;
export type FamilyReason = `${keyof typeof REASON_FAMILIES}${string}`;
/** Every reason Syncline may report. */
export type Reason = CataloguedReason | FamilyReason;

const catalogued: Readonly<Record<string, ReasonInfo>> = REASONS;
const families = Object.entries(REASON_FAMILIES as Readonly<Record<string, ReasonInfo>>);

/** Whether `reason` is in the catalogue (or a family of it). */
export function isReason(reason: string): reason is Reason {
  return reasonInfo(reason) !== undefined;
}

/** The catalogue entry of a reason; undefined for a reason the catalogue does not know (e.g. a newer runner's). */
export function reasonInfo(reason: string): ReasonInfo | undefined {
  if (Object.hasOwn(catalogued, reason)) return catalogued[reason];
  return families.find(([prefix]) => reason.startsWith(prefix) && reason.length > prefix.length)?.[1];
}

/** The kind of a reason; undefined for a reason the catalogue does not know. */
export function reasonKind(reason: Reason): ReasonKind;
export function reasonKind(reason: string): ReasonKind | undefined;
export function reasonKind(reason: string): ReasonKind | undefined {
  return reasonInfo(reason)?.kind;
}

/** Only a person can fix it: the operator sets Stalled=True with this reason. */
export function needsPersonReason(reason: string): boolean {
  return reasonKind(reason) === 'needsPerson';
}

/** It may pass by itself: retried with backoff, Ready=False meanwhile. */
export function isTransientReason(reason: string): boolean {
  return reasonKind(reason) === 'transient';
}
