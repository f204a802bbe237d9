"""The only doors to the outside: bounded thread pools with deadlines and breakers (offload),
the transactional outbox, mail, webhooks and the events they carry. Tasks get plain values."""
