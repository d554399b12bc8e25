-- Operator role, pipelines and their executions.
--
-- users.role: `user` or `admin`. Admins manage the shared model servers and see every user's
-- usage; `ADMIN_EMAILS` also makes an address an admin without a row change.
alter table users add column role text not null default 'user' check (role in ('user', 'admin'));

-- A pipeline: an owned, named, versioned list of steps (`definition`, the validated JSON of
-- its steps and declared inputs). Every update bumps `version`; an execution keeps a copy of
-- the definition it ran, so editing a pipeline never changes a run in progress.
create table pipelines (
    id          text primary key,
    user_id     text not null references users(id) on delete cascade,
    name        text not null,
    description text,
    version     integer not null default 1,
    definition  text not null,
    created_at  integer not null,
    updated_at  integer not null
);

create index pipelines_by_user on pipelines (user_id, created_at desc, id desc);

-- One run of a pipeline, driven by the queue consumer. `lease_until` is the time until which
-- one consumer owns the run (a second delivery of its message waits instead of running the
-- same step twice), or when its retry is due; `attempts` counts failed tries of the current
-- step, for backoff and the last-attempt rule. An unfinished run whose lease ran out long ago
-- lost its message (a consumer that died with it): the scheduled sweeper sends it again.
create table pipeline_executions (
    id               text primary key,
    pipeline_id      text not null references pipelines(id) on delete cascade,
    user_id          text not null references users(id) on delete cascade,
    pipeline_version integer not null,
    definition       text not null,
    input            text not null,
    status           text not null check (status in ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    cancel_requested integer not null default 0 check (cancel_requested in (0, 1)),
    attempts         integer not null default 0,
    lease_until      integer,
    -- When the sweeper last sent this execution's message again (see below).
    requeued_at      integer,
    error_step       text,
    error            text,
    output           text,
    created_at       integer not null,
    started_at       integer,
    finished_at      integer,
    updated_at       integer not null
);

create index pipeline_executions_by_pipeline on pipeline_executions (pipeline_id, created_at desc, id desc);
create index pipeline_executions_by_user on pipeline_executions (user_id);
-- The sweeper's scan: unfinished executions only.
create index pipeline_executions_unfinished on pipeline_executions (status, lease_until)
    where status in ('queued', 'running');

-- The checkpoint of one finished step: written once, in one statement, when the step ends.
-- A redelivered message skips every step that has a row here, so a finished step is never
-- run (or billed) twice. Totals of an execution are the sums over its rows.
create table pipeline_step_runs (
    execution_id      text not null references pipeline_executions(id) on delete cascade,
    step_index        integer not null,
    step_id           text not null,
    status            text not null check (status in ('succeeded', 'skipped', 'failed')),
    output            text,
    model             text,
    prompt_tokens     integer not null default 0,
    completion_tokens integer not null default 0,
    latency_ms        integer not null default 0,
    attempts          integer not null default 1,
    error             text,
    started_at        integer not null,
    finished_at       integer not null,
    primary key (execution_id, step_index)
);
