/**
 * How a large report loads: 10,000 predictions (2,000 with thumbnails, as `objinfer report`
 * makes at most), written by the real page builder and opened in Chromium. Prints the file's
 * size and the time until the first page of cards is drawn.
 *
 *   npx tsx bench/report-load.ts [images]
 */
import { mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import sharp from 'sharp';
import { reportHtml, type ReportData } from '../src/report';

async function main(): Promise<void> {
  const count = Number(process.argv[2] ?? 10_000);
  const thumb = `data:image/jpeg;base64,${(
    await sharp({ create: { width: 128, height: 96, channels: 3, background: { r: 90, g: 120, b: 200 } } })
      .jpeg({ quality: 70 })
      .toBuffer()
  ).toString('base64')}`;
  const labels = Array.from({ length: 1000 }, (_, i) => `label ${i}`);
  const data: ReportData = {
    pipeline: 'bench',
    backend: 'local',
    modelVersions: ['v'],
    runs: ['r'],
    generatedAt: new Date().toISOString(),
    thumbnailNote: 'bench',
    cards: Array.from({ length: count }, (_, i) => ({
      uri: `file:///photos/img-${i}.jpg`,
      name: `img-${i}.jpg`,
      path: `/photos/img-${i}.jpg`,
      label: labels[i % labels.length]!,
      score: (i % 997) / 997,
      topK: [0, 1, 2, 3, 4].map((k) => ({ label: labels[(i + k) % labels.length]!, score: 0.2 })),
      version: 'v',
      runId: 'r',
      thumbnail: i < 2000 ? thumb : undefined,
    })),
    errors: [],
  };
  const file = join(mkdtempSync(join(tmpdir(), 'objinfer-report-bench-')), 'report.html');
  writeFileSync(file, reportHtml(data));
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox', '--disable-gpu'] });
  try {
    const page = await browser.newPage();
    const started = Date.now();
    await page.goto(`file://${file}`);
    await page.locator('#gallery .card').first().waitFor();
    const loadMs = Date.now() - started;
    const filterStarted = Date.now();
    await page.selectOption('#label', 'label 7');
    await page.locator('#count').filter({ hasText: ' of ' }).waitFor();
    console.log(
      JSON.stringify({
        images: count,
        thumbnails: Math.min(2000, count),
        fileMiB: +(statSync(file).size / 2 ** 20).toFixed(1),
        firstPageMs: loadMs,
        filterMs: Date.now() - filterStarted,
      }),
    );
  } finally {
    await browser.close();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
