/**
 * Lines to stdout that outlive their reader: when it goes away (`syncline run | head -1`), writing
 * stops and the commands go on, so the remaining Syncs still run (their summaries are in the diff store:
 * `syncline debug` shows them). Node ignores SIGPIPE, so a closed pipe is an EPIPE error on the stream,
 * which would otherwise crash the process between two Syncs.
 */
export interface Output {
  line(text: string): void;
  /** Whether stdout's reader went away. */
  readonly closed: boolean;
}

export function createOutput(
  stream: NodeJS.WritableStream = process.stdout,
  notice: (text: string) => void = (text) => process.stderr.write(text),
): Output {
  let closed = false;
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE' && error.code !== 'ERR_STREAM_DESTROYED') throw error;
    if (closed) return;
    closed = true;
    notice(
      'syncline: stdout was closed by its reader (EPIPE): the rest of the output is dropped, the remaining Syncs still run\n',
    );
  });
  return {
    line(text) {
      if (closed) return;
      stream.write(text.endsWith('\n') ? text : `${text}\n`);
    },
    get closed() {
      return closed;
    },
  };
}
