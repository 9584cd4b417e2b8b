#!/usr/bin/env node
'use strict';
/*
 * ossemu entry point: parses the command line (see README.md), builds the bucket store, the
 * credential set, the fault set and the counters, starts the S3/OSS port and the admin port, and
 * prints exactly one JSON "ready" line on stdout:
 *
 *   {"ready":true,"port":40123,"admin_port":40124,"pid":1234}
 *
 * Nothing else is ever written to stdout (callers may close the pipe after the ready line); logs
 * go to stderr. SIGTERM / SIGINT close both ports, destroy every connection (stalled ones
 * included) and exit 0.
 */
const fs = require('fs');
const { Store } = require('./lib/store');
const { Credentials, Authenticator } = require('./lib/auth');
const { Faults } = require('./lib/faults');
const { Stats } = require('./lib/stats');
const { OssServer } = require('./lib/oss');
const { AdminServer } = require('./lib/admin');

const USAGE = `usage: node server.js --root DIR [--bucket NAME] [--port N] [--admin-port N] [--host H]
       [--region R] [--cred AK:SK]... [--sts AK:SK:TOKEN]... [--latency-ms N]
       [--bw-per-conn BYTES] [--bw-bucket BYTES] [--faults JSON] [--no-crc] [--tls-cert PEM --tls-key PEM] [--verbose]`;

function log(msg) {
  try {
    process.stderr.write(`ossemu[${process.pid}] ${new Date().toISOString()} ${msg}\n`);
  } catch (e) {
    /* stderr gone: nothing to do */
  }
}

function die(msg) {
  process.stderr.write(`ossemu: ${msg}\n${USAGE}\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const o = {
    root: null, bucket: 'testbucket', port: 0, adminPort: 0, host: '127.0.0.1',
    region: 'cn-hangzhou', creds: [], sts: [], latencyMs: 0, bwPerConn: 0, bwBucket: 0, faults: null,
    noCrc: false, verbose: false, tlsCert: null, tlsKey: null,
  };
  const num = (name, v) => {
    if (v === undefined || !/^\d+$/.test(v)) die(`${name} needs a non-negative integer`);
    return Number(v);
  };
  for (let i = 0; i < argv.length; i++) {
    let a = argv[i];
    let val;
    const eq = a.indexOf('=');
    if (a.startsWith('--') && eq > 0) {
      val = a.slice(eq + 1);
      a = a.slice(0, eq);
    }
    const next = () => {
      if (val !== undefined) return val;
      if (i + 1 >= argv.length) die(`${a} needs a value`);
      return argv[++i];
    };
    switch (a) {
      case '--root': o.root = next(); break;
      case '--bucket': o.bucket = next(); break;
      case '--port': o.port = num(a, next()); break;
      case '--admin-port': o.adminPort = num(a, next()); break;
      case '--host': o.host = next(); break;
      case '--region': o.region = next(); break;
      case '--cred': o.creds.push(next()); break;
      case '--sts': o.sts.push(next()); break;
      case '--latency-ms': o.latencyMs = num(a, next()); break;
      case '--bw-per-conn': o.bwPerConn = num(a, next()); break;
      case '--bw-bucket': o.bwBucket = num(a, next()); break;
      case '--faults': o.faults = next(); break;
      case '--no-crc': o.noCrc = true; break;
      case '--tls-cert': o.tlsCert = next(); break;
      case '--tls-key': o.tlsKey = next(); break;
      case '--verbose': o.verbose = true; break;
      case '-h':
      case '--help':
        process.stderr.write(USAGE + '\n');
        process.exit(0);
        break;
      default:
        die(`unknown option ${a}`);
    }
  }
  if (!o.root) die('--root is required');
  if (!o.tlsCert !== !o.tlsKey) die('--tls-cert and --tls-key go together');
  let st;
  try {
    st = fs.statSync(o.root);
  } catch (e) {
    die(`--root ${o.root}: ${e.message}`);
  }
  if (!st.isDirectory()) die(`--root ${o.root} is not a directory`);
  if (!/^[a-z0-9][a-z0-9-]{1,62}$/.test(o.bucket)) die(`bad bucket name "${o.bucket}"`);
  if (o.port > 65535 || o.adminPort > 65535) die('ports must be <= 65535');
  if (o.creds.length === 0) o.creds.push('testak:testsk');
  return o;
}

async function main() {
  // Callers may close our stdout after the ready line: never let that kill us.
  process.stdout.on('error', () => {});
  process.on('SIGPIPE', () => {});

  const opts = parseArgs(process.argv.slice(2));
  const creds = new Credentials();
  try {
    creds.replace({ creds: opts.creds, sts: opts.sts });
  } catch (e) {
    die(e.message);
  }
  const faults = new Faults();
  if (opts.faults) {
    try {
      faults.set(JSON.parse(opts.faults));
    } catch (e) {
      die(`--faults: ${e.message}`);
    }
  }
  const store = new Store(opts.root, { log, noCrc: opts.noCrc });
  const stats = new Stats();
  const auth = new Authenticator(creds, opts.region);
  const ctx = { store, creds, auth, faults, stats, opts, log };
  const oss = new OssServer(ctx);
  ctx.oss = oss;
  const admin = new AdminServer(ctx);

  let port;
  let adminPort;
  try {
    port = await oss.listen(opts.port, opts.host);
    adminPort = await admin.listen(opts.adminPort);
  } catch (e) {
    die(`cannot listen: ${e.message}`);
  }

  let closing = false;
  const shutdown = sig => {
    if (closing) return;
    closing = true;
    log(`${sig}: shutting down`);
    const force = setTimeout(() => process.exit(0), 2000);
    force.unref();
    Promise.all([oss.close(), admin.close()]).then(() => process.exit(0));
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));

  log(`serving ${store.root} as bucket ${opts.bucket} (region ${opts.region}) on ${opts.host}:${port}, admin 127.0.0.1:${adminPort}`);
  process.stdout.write(JSON.stringify({ ready: true, port, admin_port: adminPort, pid: process.pid }) + '\n');
}

process.on('uncaughtException', err => {
  log(`uncaught exception: ${err && err.stack ? err.stack : err}`);
});
process.on('unhandledRejection', err => {
  log(`unhandled rejection: ${err && err.stack ? err.stack : err}`);
});

main();
