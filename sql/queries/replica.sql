-- name: replica_lag
-- How stale this server's data may be, in seconds: 0 on a primary, 0 on a standby that has
-- replayed all the WAL it received while a WAL receiver is running (an idle primary sends
-- nothing, so the last replayed commit's age would overstate it), else the age of the last
-- replayed commit; NULL when that is unknown (nothing replayed since the standby started).
SELECT CASE
    WHEN NOT pg_is_in_recovery() THEN 0::float8
    WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn()
         AND EXISTS (SELECT 1 FROM pg_stat_wal_receiver) THEN 0::float8
    ELSE greatest(0, extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp()))::float8
END;
