// Headless Chromium for the console's browser test: Debian's `chromium` package, driven by playwright-core
// through `executablePath` (never Playwright's own browser download).
import { ensureDebianTool } from './prometheus.ts';
import { VERSIONS } from './versions.ts';

const { chromium } = VERSIONS as unknown as { chromium: { debianPackage: string; binary: string } };

/** The Chromium binary, installed with apt-get when missing (as root; else the message says what to run). */
export async function ensureChromium(): Promise<string> {
  return ensureDebianTool(chromium.debianPackage, chromium.binary);
}
