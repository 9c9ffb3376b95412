/** Saves `text` as a file through a Blob URL (no data: URL, no server round trip). */
export function downloadText(filename: string, text: string, type = 'application/x-pem-file'): void {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = document.createElement('a');
  a.href = url;
  a.download = filename;
  a.rel = 'noopener';
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 0);
}

/** PEM blocks joined with one newline between them and a final newline. */
export function joinPem(blocks: readonly string[]): string {
  return blocks.map((b) => b.trim()).join('\n') + '\n';
}
