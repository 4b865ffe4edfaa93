ALTER TABLE signals_outbox ADD COLUMN trace_context TEXT;
