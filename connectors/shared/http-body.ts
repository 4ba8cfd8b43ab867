// The start of an HTTP response body, shared by the destinations that call HTTP APIs.

/** At most about `limit` bytes of the body, as text; the rest is not read (the stream is cancelled). */
export async function readBodyStart(response: Response, limit: number): Promise<string> {
  if (!response.body) return '';
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    while (size < limit) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      size += value.byteLength;
    }
  } finally {
    // Cancelling a body that is already read, or whose connection is gone, has nothing left to report.
    await reader.cancel().catch(() => undefined);
  }
  return Buffer.concat(chunks).toString('utf8');
}
