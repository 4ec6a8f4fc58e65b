// Preloaded with `node -r` into a CLI process: at exit, writes the npm packages the process
// loaded (one per line) to OBJINFER_LOADED_PACKAGES, so a test can say what a command loads.
const { writeFileSync } = require('node:fs');
const out = process.env.OBJINFER_LOADED_PACKAGES;
process.on('exit', () => {
  const packages = new Set();
  for (const file of Object.keys(require.cache)) {
    const match = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(file);
    if (match) packages.add(match[1]);
  }
  if (out) writeFileSync(out, [...packages].sort().join('\n'));
});
