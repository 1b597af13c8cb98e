// (e) The receiver as Vobiz's docs show it for Node: Express, raw body, HMAC-SHA256 hex,
// crypto.timingSafeEqual, JSON.parse, route on X-Webhook-Event, 200.
//
//   VOBIZ_WEBHOOK_SECRET=... PORT=39105 node server.js
const crypto = require('crypto');
const express = require('express');

const SECRET = process.env.VOBIZ_WEBHOOK_SECRET || 'your-shared-secret';
const PORT = Number(process.env.PORT || 39105);

const app = express();

app.post('/webhooks/vobiz', express.raw({ type: 'application/json' }), (req, res) => {
  const signature = req.get('X-Webhook-Signature') || '';
  const expected = crypto.createHmac('sha256', SECRET).update(req.body).digest('hex');
  const a = Buffer.from(signature);
  const b = Buffer.from(expected);
  if (a.length !== b.length || !crypto.timingSafeEqual(a, b)) {
    return res.sendStatus(401);
  }
  const event = JSON.parse(req.body.toString('utf8'));
  switch (req.get('X-Webhook-Event')) {
    case 'message.inbound':
    case 'message.status':
    default:
      void event; // handle event.payload here
  }
  res.sendStatus(200);
});

app.listen(PORT, '127.0.0.1');
