// A WebSocket server on the npm `ws` package, for hublink's WebSocket transport tests.
//
//   node ws_peer.js <mode> <port_file> <events_file> [<cert_file> <key_file>]
//
// Listens on 127.0.0.1 port 0 (wss:// when a certificate and key are given), writes the port to <port_file> (atomically) once listening, and appends one line
// per finished connection to <events_file>: "closed <code the client sent or 1006>".
// Modes:
//   conformance  tests/conformance.h: "HELLO\n" on connect, echo, close (1000) after "QUIT\n"
//   fragments    a binary message in three fragments with PINGs between them; once both PONGs are back,
//                reports them: "pongs:<payload>,<payload>\n"
//   close        "HELLO\n", then closes with 4001 "maintenance window"
//   unauthorized answers the upgrade with HTTP 401
//   subprotocol  accepts the upgrade naming subprotocol "chat", which no MQTT client offers
//   oversized    sends one 4096-byte binary message
'use strict';

const fs = require('fs');
const http = require('http');
const https = require('https');
let WebSocket;
try {
  WebSocket = require('ws');
} catch (e) {
  console.error('ws_peer: the npm package "ws" is missing: run tools/bootstrap.sh (npm ci in tests/peers)');
  process.exit(2);
}

const [mode, portFile, eventsFile, certFile, keyFile] = process.argv.slice(2);
if (!mode || !portFile || !eventsFile) {
  console.error('usage: node ws_peer.js <mode> <port_file> <events_file>');
  process.exit(2);
}

function record(line) {
  fs.appendFileSync(eventsFile, line + '\n');
}

function plainHttp(req, res) {
  res.writeHead(426, {'Content-Type': 'text/plain'});
  res.end('WebSocket only\n');
}
const server = certFile
  ? https.createServer({cert: fs.readFileSync(certFile), key: fs.readFileSync(keyFile)}, plainHttp)
  : http.createServer(plainHttp);

const wss = new WebSocket.Server({
  noServer: true,
  handleProtocols: (protocols) => {
    if (mode === 'subprotocol') return 'chat';
    return protocols.has('mqtt') ? 'mqtt' : false;
  },
});

// ws sends no Date header; real brokers do, and the client takes its server clock from it.
wss.on('headers', (headers) => headers.push(`Date: ${new Date().toUTCString()}`));

server.on('upgrade', (req, socket, head) => {
  if (mode === 'unauthorized') {
    socket.end('HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
    record('refused 401');
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
});

const QUIT = Buffer.from('QUIT\n');

wss.on('connection', (ws) => {
  ws.on('close', (code) => record(`closed ${code}`));
  ws.on('error', (err) => console.error(`ws_peer: ${err.message}`));

  if (mode === 'conformance') {
    ws.send(Buffer.from('HELLO\n'));
    let tail = Buffer.alloc(0);
    let quitting = false;
    ws.on('message', (data) => {
      if (quitting) return;
      const seen = Buffer.concat([tail, data]);
      const at = seen.indexOf(QUIT);
      if (at < 0) {
        ws.send(data);
        tail = seen.subarray(Math.max(0, seen.length - (QUIT.length - 1)));
        return;
      }
      // Echo up to and including QUIT (which may have begun in an earlier message), then close.
      const end = at + QUIT.length - tail.length;
      ws.send(data.subarray(0, end));
      quitting = true;
      ws.close(1000, 'quit');
    });
  } else if (mode === 'fragments') {
    const pongs = [];
    ws.on('pong', (payload) => {
      pongs.push(payload.toString());
      if (pongs.length === 2) ws.send(Buffer.from(`pongs:${pongs.join(',')}\n`));
    });
    ws.send(Buffer.from('frag-1|'), {binary: true, fin: false});
    ws.ping(Buffer.from('p1'));
    ws.send(Buffer.from('frag-2|'), {binary: true, fin: false});
    ws.ping(Buffer.from('p2'));
    ws.send(Buffer.from('frag-3\n'), {binary: true, fin: true});
  } else if (mode === 'close') {
    ws.send(Buffer.from('HELLO\n'));
    ws.close(4001, 'maintenance window');
  } else if (mode === 'oversized') {
    ws.send(Buffer.alloc(4096, 0x61));
  } else if (mode === 'subprotocol') {
    ws.send(Buffer.from('HELLO\n'));
  }
});

server.listen(0, '127.0.0.1', () => {
  const tmp = `${portFile}.tmp`;
  fs.writeFileSync(tmp, String(server.address().port));
  fs.renameSync(tmp, portFile);
});

process.on('SIGTERM', () => process.exit(0));
