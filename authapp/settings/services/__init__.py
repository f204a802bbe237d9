"""The settings use cases, one module per subject: each public function that writes commits once,
at its end. They take plain values and a Principal, never the request."""
