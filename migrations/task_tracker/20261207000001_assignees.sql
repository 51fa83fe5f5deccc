-- Who a new task can go to (active, a worker or an accountant, its accounts.created applied),
-- numbered from 0 without gaps: a draw is then the count and one slot, two index lookups,
-- instead of sorting every assignable account at random for every task.
CREATE TABLE assignees (
    slot       integer PRIMARY KEY CHECK (slot >= 0),
    account_id uuid    NOT NULL UNIQUE
);

-- Whether an account with this state is one a task can go to: the one definition, for the
-- triggers and the backfill below.
CREATE FUNCTION assignable(active boolean, role text, state_time timestamptz) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(active AND role IN ('accountant', 'worker') AND state_time IS NOT NULL, false)
$$;

-- Keeps assignees in step with every change to accounts, in the same transaction. One writer
-- of accounts at a time (lock_assignees): an account that stops being assignable hands its slot
-- to the last one, and two at once could leave a gap, which a draw would find empty.
--
-- The functions keep the schema they were made in (SET search_path), so a session that names
-- the table with its schema still finds assignees.
CREATE FUNCTION keep_assignees() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    was boolean := TG_OP <> 'INSERT' AND assignable(OLD.active, OLD.role, OLD.state_time);
    is_now boolean := TG_OP <> 'DELETE' AND assignable(NEW.active, NEW.role, NEW.state_time);
    freed integer;
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.account_id <> NEW.account_id THEN
        RAISE EXCEPTION 'an account''s id never changes (% to %)', OLD.account_id, NEW.account_id;
    END IF;
    IF was = is_now THEN
        RETURN NULL;
    END IF;
    IF is_now THEN
        INSERT INTO assignees (slot, account_id)
        SELECT coalesce(max(slot) + 1, 0), NEW.account_id FROM assignees;
    ELSE
        DELETE FROM assignees WHERE account_id = OLD.account_id RETURNING slot INTO freed;
        UPDATE assignees SET slot = freed
        WHERE slot = (SELECT max(slot) FROM assignees) AND slot > freed;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER keep_assignees AFTER INSERT OR UPDATE OR DELETE ON accounts
    FOR EACH ROW EXECUTE FUNCTION keep_assignees();

-- The lock is taken before a statement touches any row of accounts, and held to the end of the
-- transaction: taken only once a row has changed, it would have two writers each holding a row
-- the other one wants next. Under READ COMMITTED only: each statement of keep_assignees then
-- sees what the writer before committed; a transaction with an older snapshot would number
-- from a stale count.
CREATE FUNCTION lock_assignees() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'accounts are written under READ COMMITTED only, not %',
            upper(current_setting('transaction_isolation'))
            USING HINT = 'assignees numbers the assignable accounts from what the writer before committed';
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext(TG_TABLE_SCHEMA || '.assignees'));
    RETURN NULL;
END
$$;

CREATE TRIGGER lock_assignees BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON accounts
    FOR EACH STATEMENT EXECUTE FUNCTION lock_assignees();

-- An emptied accounts table (TRUNCATE fires no row triggers) leaves nobody to draw.
CREATE FUNCTION forget_assignees() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    TRUNCATE assignees;
    RETURN NULL;
END
$$;

CREATE TRIGGER forget_assignees AFTER TRUNCATE ON accounts
    FOR EACH STATEMENT EXECUTE FUNCTION forget_assignees();

-- The accounts known before this migration.
INSERT INTO assignees (slot, account_id)
SELECT row_number() OVER (ORDER BY account_id) - 1, account_id FROM accounts
WHERE assignable(active, role, state_time);
