"""Authentication's use cases: each public function that writes commits once, at its end, then
dispatches the outbox messages it added. They take plain values and a Principal, never the
request."""
