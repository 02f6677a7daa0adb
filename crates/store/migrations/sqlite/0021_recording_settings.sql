-- Recording (issue 11 leftovers): why a call that was to be recorded has no
-- recording (the CDR's `recording_error`: a reason code and a detail; both
-- NULL when nothing was to be recorded or the recording exists), and the
-- tenant's own recording flag (every call of the tenant is recorded). Kept
-- in lockstep with the other backend's 0021_recording_settings.sql.
ALTER TABLE cdrs ADD COLUMN recording_error_reason TEXT;
ALTER TABLE cdrs ADD COLUMN recording_error_detail TEXT;
ALTER TABLE tenants ADD COLUMN recording BOOLEAN NOT NULL DEFAULT FALSE;
