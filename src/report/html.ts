/**
 * The report page: one self-contained HTML file (no server, no network: a content security
 * policy allows only inline code and data: images). Charts are SVG drawn here; the gallery
 * is drawn in the browser from the data embedded as JSON, with text set through textContent,
 * so that nothing in an object's name or a label can become markup.
 */
import { formatPercent } from '../format';
import type { ReportChanges } from './changes';

export interface ReportCard {
  uri: string;
  /** The file's name, shown under its picture. */
  name: string;
  /** The whole path (or gs:// URI), shown on hover. */
  path: string;
  label: string;
  score: number;
  topK: { label: string; score: number }[];
  /** The prediction version. */
  version: string;
  runId: string;
  thumbnail?: string;
  /** The true class as a model label, where the config's ground truth gives one. */
  truth?: string;
}

/** The newest version's evaluation, as the report shows it (see ../evaluation). */
export interface ReportEvaluation {
  modelVersion: string | null;
  groundTruth: string;
  images: number;
  evaluated: number;
  withoutGroundTruth: number;
  withoutPrediction: number;
  accuracy: number | null;
  topK: { k: number; accuracy: number }[];
  macro: { precision: number; recall: number; f1: number };
  weighted: { precision: number; recall: number; f1: number };
  /** The classes with the most support. */
  classes: { label: string; precision: number; recall: number; f1: number; support: number; predicted: number }[];
  /** The largest classes; the rest summed as "(other)". */
  confusion: { labels: string[]; matrix: number[][] };
}

export interface ReportError {
  uri: string;
  name: string;
  error: string;
  kind: string;
  thumbnail?: string;
}

export interface ReportData {
  pipeline: string;
  backend: string;
  modelVersions: string[];
  runs: string[];
  generatedAt: string;
  /** Where the thumbnails come from, or why there are none. */
  thumbnailNote: string;
  cards: ReportCard[];
  errors: ReportError[];
  evaluation?: ReportEvaluation;
  /** The images whose top-1 label changed between two versions; absent with fewer than two. */
  changes?: ReportChanges;
}

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** JSON that can sit inside a <script> element: nothing in it can close the element. */
export function scriptJson(value: unknown): string {
  return JSON.stringify(value)
    .replace(/</g, '\\u003c')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
}

/** Predictions per label, most frequent first, as horizontal bars. */
export function labelChart(cards: ReportCard[]): string {
  const counts = new Map<string, number>();
  for (const c of cards) counts.set(c.label, (counts.get(c.label) ?? 0) + 1);
  const bars = [...counts].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).slice(0, 30);
  const most = Math.max(1, ...bars.map(([, n]) => n));
  const row = 22;
  const height = Math.max(row, bars.length * row);
  const items = bars
    .map(([label, n], i) => {
      const width = Math.max(1, Math.round((n / most) * 300));
      const y = i * row;
      return (
        `<text x="158" y="${y + 15}" text-anchor="end">${escapeHtml(label.length > 24 ? `${label.slice(0, 23)}…` : label)}</text>` +
        `<rect x="164" y="${y + 4}" width="${width}" height="14" class="bar"><title>${escapeHtml(label)}: ${n}</title></rect>` +
        `<text x="${170 + width}" y="${y + 15}">${n}</text>`
      );
    })
    .join('');
  return `<svg role="img" aria-label="predictions per label" width="520" height="${height}" viewBox="0 0 520 ${height}">${items}</svg>`;
}

/** How confident the model was: the top score of each image in ten bins from 0 to 1 (scores outside count at the ends). */
export function scoreChart(cards: ReportCard[]): string {
  const bins = new Array<number>(10).fill(0);
  for (const c of cards) bins[Math.min(9, Math.max(0, Math.floor(c.score * 10)))]!++;
  const most = Math.max(1, ...bins);
  const bars = bins
    .map((n, i) => {
      const h = Math.round((n / most) * 120);
      return (
        `<rect x="${20 + i * 48}" y="${130 - h}" width="40" height="${h}" class="bar"><title>${(i / 10).toFixed(1)}–${((i + 1) / 10).toFixed(1)}: ${n}</title></rect>` +
        `<text x="${40 + i * 48}" y="148" text-anchor="middle">${(i / 10).toFixed(1)}</text>`
      );
    })
    .join('');
  return `<svg role="img" aria-label="top scores" width="520" height="160" viewBox="0 0 520 160">${bars}</svg>`;
}

const percent = formatPercent;

/**
 * The confusion matrix as a heat map: rows the truth, columns the prediction, each cell shaded
 * by its share of its row (so a small class's mistakes show as well as a large one's).
 */
export function confusionHeatMap(confusion: ReportEvaluation['confusion']): string {
  const { labels, matrix } = confusion;
  const cell = 30;
  const left = 130;
  const top = 110;
  const short = (label: string) => escapeHtml(label.length > 18 ? `${label.slice(0, 17)}…` : label);
  const heads = labels
    .map(
      (label, j) =>
        `<text transform="translate(${left + j * cell + cell / 2 + 4},${top - 6}) rotate(-60)">${short(label)}</text>` +
        `<text x="${left - 6}" y="${top + j * cell + cell / 2 + 4}" text-anchor="end">${short(label)}</text>`,
    )
    .join('');
  const cells = matrix
    .map((row, i) => {
      const total = row.reduce((a, b) => a + b, 0) || 1;
      return row
        .map((n, j) => {
          const x = left + j * cell;
          const y = top + i * cell;
          const share = n / total;
          return (
            `<rect class="cell" x="${x}" y="${y}" width="${cell - 2}" height="${cell - 2}" fill="rgba(59,111,216,${(0.06 + 0.94 * share).toFixed(3)})"` +
            ` data-truth="${escapeHtml(labels[i]!)}" data-predicted="${escapeHtml(labels[j]!)}" data-images="${n}">` +
            `<title>truth ${escapeHtml(labels[i]!)}, predicted ${escapeHtml(labels[j]!)}: ${n}</title></rect>` +
            (n > 0 ? `<text x="${x + cell / 2 - 1}" y="${y + cell / 2 + 4}" text-anchor="middle" class="${share > 0.5 ? 'light' : ''}">${n}</text>` : '')
          );
        })
        .join('');
    })
    .join('');
  const size = labels.length * cell;
  return `<svg role="img" aria-label="confusion matrix" id="confusion" width="${left + size + 10}" height="${top + size + 10}" viewBox="0 0 ${left + size + 10} ${top + size + 10}">${heads}${cells}</svg>`;
}

/** Filled in the browser from the embedded data: pairs of the changed images' cards. */
function changesSection(c: ReportChanges): string {
  const [a, b] = c.versions.map(escapeHtml);
  const summary = c.both
    ? `${c.changed.length} of ${c.both} images predicted by both got another top-1 label (${percent(c.changed.length / c.both)})`
    : 'no image has a prediction of both versions';
  return `<section id="changes"><h2>Changed between ${a} and ${b}</h2>
<div class="controls"><span id="changed-count">${escapeHtml(summary)}</span><button id="changes-prev">previous</button><button id="changes-next">next</button><span id="changes-page"></span></div>
<div class="grid pairs" id="changed"></div></section>`;
}

function evaluationSection(e: ReportEvaluation): string {
  if (e.evaluated === 0) {
    return `<section id="evaluation"><h2>Evaluation</h2><p>ground truth ${escapeHtml(e.groundTruth)}: no image has both a ground truth and a prediction of version ${escapeHtml(e.modelVersion ?? '-')}</p></section>`;
  }
  const rows = e.classes
    .map(
      (c) =>
        `<tr><td>${escapeHtml(c.label)}</td><td>${c.precision.toFixed(3)}</td><td>${c.recall.toFixed(3)}</td><td>${c.f1.toFixed(3)}</td><td>${c.support}</td><td>${c.predicted}</td></tr>`,
    )
    .join('');
  return `<section id="evaluation"><h2>Evaluation</h2>
<div class="counts">version ${escapeHtml(e.modelVersion ?? '-')} · ground truth ${escapeHtml(e.groundTruth)} · <span id="accuracy">accuracy ${percent(e.accuracy)}</span>${e.topK.map((t) => `<span>top-${t.k} ${percent(t.accuracy)}</span>`).join('')}
· ${e.evaluated} of ${e.images} images evaluated (${e.withoutGroundTruth} without ground truth, ${e.withoutPrediction} without a prediction)
· macro F1 ${e.macro.f1.toFixed(3)} · weighted F1 ${e.weighted.f1.toFixed(3)}</div>
<div class="charts"><div><h3>Confusion matrix</h3><p class="meta">rows: truth; columns: prediction; click a cell to see its images in the gallery</p>${confusionHeatMap(e.confusion)}</div>
<div><h3>Per class</h3><table id="classes"><thead><tr><th>label</th><th>precision</th><th>recall</th><th>F1</th><th>support</th><th>predicted</th></tr></thead><tbody>${rows}</tbody></table></div></div></section>`;
}

const STYLE = `
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header,section{padding:12px 24px}header{background:#1d2330;color:#fff}h1{font-size:20px;margin:0 0 4px}
.meta{opacity:.8;font-size:13px}.counts span{margin-right:18px}.charts{display:flex;flex-wrap:wrap;gap:24px}
svg text{font-size:11px;fill:#1d2330}.bar{fill:#3b6fd8}.controls{display:flex;flex-wrap:wrap;gap:12px;align-items:center}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(180px,1fr));gap:12px;margin-top:12px}
.card{background:#fff;border-radius:6px;padding:8px;box-shadow:0 1px 2px #0002}.card img,.ph{width:100%;height:128px;object-fit:contain;background:#eef0f3;display:block}
.ph{display:flex;align-items:center;justify-content:center;color:#889;font-size:12px}.name{font-size:12px;margin:4px 0;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.topk div{display:flex;align-items:center;gap:4px;font-size:12px}.topk i{display:block;height:8px;background:#3b6fd8;border-radius:2px}
.topk span{flex:0 0 45%;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}table{border-collapse:collapse;width:100%;background:#fff}
td,th{border-bottom:1px solid #e3e5e8;padding:4px 8px;text-align:left;vertical-align:top;font-size:12px}td img{width:64px}
.pairs{grid-template-columns:repeat(auto-fill,minmax(340px,1fr))}.pair .sides{display:flex;gap:8px}.pair .sides>div{flex:1;min-width:0}
.pair h4{margin:2px 0;font-size:12px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}.truth{font-size:12px;color:#555}
.cell{cursor:pointer}.cell:hover{stroke:#1d2330}#confusion text{pointer-events:none}svg text.light{fill:#fff}#classes{width:auto}
`;

/** Runs in the page: filters, sort and paging over the embedded cards. */
const SCRIPT = `
const data = JSON.parse(document.getElementById('report-data').textContent);
const $ = (id) => document.getElementById(id);
const PAGE = 60;
let page = 0;
const labels = [...new Set(data.cards.map((c) => c.label))].sort();
for (const l of labels) { const o = document.createElement('option'); o.value = l; o.textContent = l; $('label').appendChild(o); }
let cell = null;
const shownLabels = new Set(data.evaluation ? data.evaluation.confusion.labels : []);
const inCell = (value, name) => name === '(other)' ? value !== undefined && !shownLabels.has(value) : value === name;
function selected() {
  const label = $('label').value, min = parseFloat($('min').value), max = parseFloat($('max').value), sort = $('sort').value;
  const shown = data.cards.filter((c) => (!label || c.label === label) && !(c.score < min) && !(c.score > max) && (!cell || (c.version === data.evaluation.modelVersion && inCell(c.truth, cell.truth) && inCell(c.label, cell.predicted))));
  const by = { 'least-confident': (a, b) => a.score - b.score, 'most-confident': (a, b) => b.score - a.score, name: (a, b) => a.name.localeCompare(b.name) }[sort];
  return shown.sort((a, b) => by(a, b) || a.uri.localeCompare(b.uri));
}
function image(src, alt) {
  if (typeof src === 'string' && src.startsWith('data:image/jpeg;base64,')) { const img = document.createElement('img'); img.src = src; img.alt = alt; return img; }
  const ph = document.createElement('div'); ph.className = 'ph'; ph.textContent = 'no preview'; return ph;
}
function topK(c) {
  const topk = document.createElement('div'); topk.className = 'topk';
  for (const t of c.topK) {
    const row = document.createElement('div'); const l = document.createElement('span'); l.textContent = t.label;
    const bar = document.createElement('i'); bar.style.width = Math.max(1, Math.round(Math.max(0, Math.min(1, t.score)) * 60)) + 'px';
    const s = document.createElement('b'); s.textContent = t.score.toFixed(3);
    row.append(l, bar, s); topk.appendChild(row);
  }
  return topk;
}
function nameOf(c) { const name = document.createElement('div'); name.className = 'name'; name.textContent = c.name; name.title = c.path; return name; }
function card(c) {
  const el = document.createElement('div'); el.className = 'card'; el.dataset.label = c.label; el.dataset.score = String(c.score);
  el.append(image(c.thumbnail, c.name), nameOf(c), topK(c)); return el;
}
function pair([i, j]) {
  const a = data.cards[i], b = data.cards[j];
  const el = document.createElement('div'); el.className = 'card pair'; el.dataset.uri = a.uri;
  el.append(image(a.thumbnail || b.thumbnail, a.name), nameOf(a));
  if (a.truth !== undefined) { const t = document.createElement('div'); t.className = 'truth'; t.textContent = 'truth: ' + a.truth; el.appendChild(t); }
  const sides = document.createElement('div'); sides.className = 'sides';
  for (const c of [a, b]) { const side = document.createElement('div'); const h = document.createElement('h4'); h.textContent = c.version; side.append(h, topK(c)); sides.appendChild(side); }
  el.appendChild(sides); return el;
}
let changesPage = 0;
function drawChanges() {
  if (!data.changes) return;
  const all = data.changes.changed, pages = Math.max(1, Math.ceil(all.length / PAGE));
  $('changed').replaceChildren(...all.slice(changesPage * PAGE, (changesPage + 1) * PAGE).map(pair));
  $('changes-page').textContent = 'page ' + (changesPage + 1) + ' of ' + pages;
  $('changes-prev').disabled = changesPage === 0; $('changes-next').disabled = changesPage >= pages - 1;
}
if (data.changes) {
  $('changes-prev').addEventListener('click', () => { changesPage--; drawChanges(); });
  $('changes-next').addEventListener('click', () => { changesPage++; drawChanges(); });
  drawChanges();
}
function draw() {
  const shown = selected(); const pages = Math.max(1, Math.ceil(shown.length / PAGE)); page = Math.min(page, pages - 1);
  $('gallery').replaceChildren(...shown.slice(page * PAGE, (page + 1) * PAGE).map(card));
  $('count').textContent = shown.length + ' of ' + data.cards.length + ' images; page ' + (page + 1) + ' of ' + pages;
  $('prev').disabled = page === 0; $('next').disabled = page >= pages - 1;
}
for (const id of ['label', 'min', 'max', 'sort']) $(id).addEventListener('input', () => { page = 0; draw(); });
function showCell(next) {
  cell = next; page = 0; $('cell').textContent = cell ? 'truth ' + cell.truth + ', predicted ' + cell.predicted : ''; $('clear-cell').hidden = !cell; draw();
}
if (data.evaluation) {
  for (const rect of document.querySelectorAll('#confusion .cell')) rect.addEventListener('click', () => showCell({ truth: rect.dataset.truth, predicted: rect.dataset.predicted }));
}
$('clear-cell').addEventListener('click', () => showCell(null));
$('prev').addEventListener('click', () => { page--; draw(); });
$('next').addEventListener('click', () => { page++; draw(); });
const rows = data.errors.map((e) => {
  const tr = document.createElement('tr'); const td = (text) => { const d = document.createElement('td'); d.textContent = text; return d; };
  const pic = document.createElement('td'); pic.appendChild(image(e.thumbnail, e.name));
  tr.append(pic, td(e.name), td(e.kind), td(e.error)); return tr;
});
if (rows.length === 0) { const tr = document.createElement('tr'); const d = document.createElement('td'); d.colSpan = 4; d.className = 'none'; d.textContent = 'none: every image was classified'; tr.appendChild(d); rows.push(tr); }
$('errors').replaceChildren(...rows);
draw();
`;

export function reportHtml(data: ReportData): string {
  const runs = data.runs.length === 1 ? `run ${data.runs[0]}` : `${data.runs.length} runs`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>objinfer report: ${escapeHtml(data.pipeline)}</title><style>${STYLE}</style></head>
<body>
<header><h1>objinfer report: ${escapeHtml(data.pipeline)}</h1>
<div class="meta">${escapeHtml(data.backend)} backend · prediction version ${escapeHtml(data.modelVersions.join(', ') || '-')} · ${escapeHtml(runs)} · made ${escapeHtml(data.generatedAt)}</div>
<div class="counts"><span id="predicted">${data.cards.length} predicted</span><span id="failed">${data.errors.length} failed</span><span>${escapeHtml(data.thumbnailNote)}</span></div></header>
${data.evaluation ? evaluationSection(data.evaluation) : ''}
${data.changes ? changesSection(data.changes) : ''}
<section class="charts"><div><h2>Predictions per label</h2>${labelChart(data.cards)}</div><div><h2>Top score</h2>${scoreChart(data.cards)}</div></section>
<section><h2>Images</h2><div class="controls">
<label>Label <select id="label"><option value="">all</option></select></label>
<label>Score from <input id="min" type="number" step="0.01" placeholder="any"></label>
<label>to <input id="max" type="number" step="0.01" placeholder="any"></label>
<label>Sort <select id="sort"><option value="least-confident">least confident first</option><option value="most-confident">most confident first</option><option value="name">name</option></select></label>
<button id="prev">previous</button><button id="next">next</button><span id="count"></span><span id="cell"></span><button id="clear-cell" hidden>all cells</button></div>
<div class="grid" id="gallery"></div></section>
<section><h2>Errors (${data.errors.length})</h2><table><thead><tr><th></th><th>object</th><th>kind</th><th>reason</th></tr></thead><tbody id="errors"></tbody></table></section>
<script type="application/json" id="report-data">${scriptJson(data)}</script>
<script>${SCRIPT}</script>
</body></html>
`;
}
