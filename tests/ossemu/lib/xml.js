'use strict';
/*
 * XML output: escaping and the few documents ossemu produces (errors, listings, bucket stat,
 * location). Documents are assembled as arrays of strings; every text value goes through esc(),
 * which also turns characters XML 1.0 cannot carry literally (control characters) into character
 * references, so any key can appear in a listing without breaking the document.
 */

const XML_DECL = '<?xml version="1.0" encoding="UTF-8"?>\n';
const S3_NS = 'http://s3.amazonaws.com/doc/2006-03-01/';

function esc(v) {
  const s = String(v);
  // Fast path: nothing to escape.
  if (!/[&<>"'\u0000-\u001f\u007f\ufffe\uffff]/.test(s)) return s;
  let out = '';
  for (const ch of s) {
    const c = ch.codePointAt(0);
    if (ch === '&') out += '&amp;';
    else if (ch === '<') out += '&lt;';
    else if (ch === '>') out += '&gt;';
    else if (ch === '"') out += '&quot;';
    else if (ch === "'") out += '&apos;';
    else if (c < 0x20 || c === 0x7f || c === 0xfffe || c === 0xffff) {
      out += `&#x${c.toString(16).toUpperCase()};`;
    } else out += ch;
  }
  return out;
}

/** <name>value</name> with the value escaped. */
function el(name, value) {
  return `<${name}>${esc(value)}</${name}>`;
}

/**
 * The error document. EXTRA: ordered [name, value] pairs appended after HostId (e.g. Key,
 * OSSAccessKeyId, StringToSign, ServerTime).
 */
function errorXml(code, message, requestId, hostId, extra) {
  const parts = [XML_DECL, '<Error>', el('Code', code), el('Message', message),
    el('RequestId', requestId), el('HostId', hostId)];
  for (const [k, v] of extra || []) {
    if (v !== undefined && v !== null) parts.push(el(k, v));
  }
  parts.push('</Error>\n');
  return parts.join('');
}

module.exports = { XML_DECL, S3_NS, esc, el, errorXml };
