package audit

// SignedMessage lets tests sign checkpoints and heads with an attacker's key.
var SignedMessage = signedMessage
