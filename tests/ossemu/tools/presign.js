#!/usr/bin/env node
'use strict';
/*
 * Prints the curl arguments of an OSS-V4-signed GET or HEAD of one object on ossemu, so that
 * benchmarks and shell scripts can drive curl against it (curl cannot sign OSS requests itself).
 * The signature comes from ali-oss's client-side signUtils.authorizationV4 and is valid for the
 * server's 15-minute skew window.
 *
 *   node tools/presign.js --port P --key K [--bucket B] [--ak AK] [--sk SK] [--token T]
 *        [--region R] [--range A-B] [--method GET|HEAD] [--host H] [--shell]
 *
 * Default output: one curl argument per line (the URL last), for
 *   mapfile -t args < <(node tools/presign.js --port "$PORT" --key big.bin)
 *   curl -sS -o /dev/null "${args[@]}"
 * With --shell: one line, each argument single-quoted, for `eval "curl $(node presign.js ...)"`.
 */
const signUtils = require('ali-oss/lib/common/signUtils');

function usage(msg) {
  if (msg) process.stderr.write(`presign: ${msg}\n`);
  process.stderr.write('usage: presign.js --port P --key K [--bucket B] [--ak AK] [--sk SK] [--token T] [--region R] [--range A-B] [--method GET|HEAD] [--host H] [--shell]\n');
  process.exit(2);
}

const o = { bucket: 'testbucket', ak: 'testak', sk: 'testsk', region: 'cn-hangzhou', method: 'GET', host: '127.0.0.1', shell: false };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  const val = () => (i + 1 < argv.length ? argv[++i] : usage(`${a} needs a value`));
  switch (a) {
    case '--port': o.port = val(); break;
    case '--key': o.key = val(); break;
    case '--bucket': o.bucket = val(); break;
    case '--ak': o.ak = val(); break;
    case '--sk': o.sk = val(); break;
    case '--token': o.token = val(); break;
    case '--region': o.region = val(); break;
    case '--range': o.range = val(); break;
    case '--method': o.method = val().toUpperCase(); break;
    case '--host': o.host = val(); break;
    case '--shell': o.shell = true; break;
    case '-h': case '--help': usage(); break;
    default: usage(`unknown option ${a}`);
  }
}
if (!o.port || !/^\d+$/.test(o.port)) usage('--port is required');
if (o.key === undefined || o.key === '') usage('--key is required');
if (o.method !== 'GET' && o.method !== 'HEAD') usage('--method must be GET or HEAD');
if (o.range !== undefined && !/^(bytes=)?\d*-\d*$/.test(o.range)) usage('--range must look like A-B, A- or -N');
if (!o.shell && /[\r\n]/.test(o.key)) usage('a key with a newline needs --shell');

const encode = s => encodeURIComponent(s).replace(/[!'()*]/g, c => '%' + c.charCodeAt(0).toString(16).toUpperCase());
const url = `http://${o.host}:${o.port}/${o.bucket}/${o.key.split('/').map(encode).join('/')}`;
const headers = {
  'x-oss-date': new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, ''),
  'x-oss-content-sha256': 'UNSIGNED-PAYLOAD',
};
if (o.token) headers['x-oss-security-token'] = o.token;
headers.authorization = signUtils.authorizationV4(o.ak, o.sk, o.region, o.method, { headers, queries: {} }, o.bucket, o.key);

const args = [];
if (o.method === 'HEAD') args.push('-I');
for (const [k, v] of Object.entries(headers)) args.push('-H', `${k}: ${v}`);
if (o.range !== undefined) args.push('-H', `Range: ${o.range.startsWith('bytes=') ? o.range : `bytes=${o.range}`}`);
args.push(url);

if (o.shell) {
  process.stdout.write(args.map(a => `'${a.replace(/'/g, "'\\''")}'`).join(' ') + '\n');
} else {
  process.stdout.write(args.join('\n') + '\n');
}
