// Baseline for bench/tus_bench.py: the official tus server for Node (@tus/server + @tus/file-store).
// Usage: node server.js DIR  -> prints "listening on http://127.0.0.1:PORT" (uploads at /files/).
const http = require('node:http');
const { Server } = require('@tus/server');
const { FileStore } = require('@tus/file-store');

const dir = process.argv[2] || './uploads';
const tus = new Server({ path: '/files', datastore: new FileStore({ directory: dir }) });
const srv = http.createServer((req, res) => tus.handle(req, res));
srv.listen(0, '127.0.0.1', () => {
  console.log(`listening on http://127.0.0.1:${srv.address().port}`);
});
