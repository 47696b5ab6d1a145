//! Notifications: what operators configure (settings, templates, providers, broadcasts) and
//! the engine that sends.
//!
//! - **From the journal.** The notifier follows the outbox's events in commit order from a
//!   durable cursor; each event with a template queues one message per channel, in the same
//!   commit that moves the cursor, so an event's messages are queued exactly once.
//! - **On schedule.** Once a day, at the programme's `schedule_hour`, the ledger is told of the
//!   day's birthdays, enrolment anniversaries and points about to expire (`Command::Notice`,
//!   keyed by the occasion and the day, so a repeated run changes nothing); they come back as
//!   events like any other.
//! - **Broadcasts.** A message to a segment at a time: queued in member id order, progress
//!   committed with each chunk.
//! - **Sending.** A due message is checked when it goes, not when queued: the member must be
//!   active, have consented to the channel and have an address; quiet hours move it to their
//!   end; the day's and the week's caps skip it. It is written from the member's profile in the
//!   member's language, posted through the channel's provider, retried with backoff, and its
//!   outcome logged (never its text or address).

use super::error::{Kind, OpError};
use super::registry::{
    BroadcastRecord, BroadcastText, Job, JobSource, NotifyCursor, NotifySettings, ProviderRecord,
    SendRecord, TemplateRecord,
};
use super::Ops;
use crate::events::{events_of, Event, KINDS, MESSAGE_KINDS};
use crate::members::Channel;
use crate::notify::provider::{valid_header, ProviderConfig, HEADERS_MAX};
use crate::notify::{
    after_quiet_hours, check_template, render_message, render_provider_body, time_of_day, Style,
};
use chrono::{Datelike, NaiveDate, TimeZone, Timelike};
use futures::TryStreamExt;
use ledger::core::model::Notice;
use ledger::core::state::Standing;
use ledger::{Command, IdemKey, MemberId, Points, Timestamp};
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::sync::Weak;
use std::time::Duration;

/// How often the engine looks for work.
const EVERY: Duration = Duration::from_millis(200);
/// Journal batches read per round.
const BATCHES_PER_ROUND: usize = 256;
/// Messages sent per round.
const SENDS_PER_ROUND: usize = 64;
/// Members whose messages of a round go to the provider at once (each member's in order, one
/// at a time, so that its caps are counted on what it was sent before).
const SENDS_AT_ONCE: usize = 16;
/// Members queued per broadcast commit.
const BROADCAST_CHUNK: usize = 1_000;
/// Attempts before a message is given up as failed.
const ATTEMPTS_MAX: u32 = 5;
/// Longest template text, in characters.
pub const TEXT_MAX: usize = 2_000;
/// Days the schedule catches up after a gateway was down.
const CATCH_UP_DAYS: u32 = 3;

fn registry(e: super::registry::RegistryError) -> OpError {
    super::partner::registry_error(e)
}

fn invalid(msg: impl Into<String>) -> OpError {
    OpError::new(Kind::InvalidRule, msg)
}

fn programme_tz(ops: &Ops) -> chrono_tz::Tz {
    ops.registry
        .programme_settings()
        .and_then(|s| s.time_zone.parse().ok())
        .unwrap_or(chrono_tz::Tz::UTC)
}

/// Instant `at_ms` in the programme's time zone.
pub(crate) fn local(ops: &Ops, at_ms: i64) -> chrono::DateTime<chrono_tz::Tz> {
    let utc = chrono::DateTime::from_timestamp_millis(at_ms).unwrap_or_default();
    programme_tz(ops).from_utc_datetime(&utc.naive_utc())
}

fn day_number(d: NaiveDate) -> u32 {
    crate::members::segments::day_number(d).max(0) as u32
}

fn check_text(what: &str, s: &str) -> Result<(), OpError> {
    if s.trim().is_empty() || s.chars().count() > TEXT_MAX {
        return Err(invalid(format!(
            "{what} must be 1 to {TEXT_MAX} characters, not all spaces"
        )));
    }
    check_template(s).map_err(|e| invalid(format!("{what}: {e}")))
}

// ---- configuration ------------------------------------------------------------------------

/// Records new notification settings. Blocking.
pub fn set_settings(
    ops: &Ops,
    mut s: NotifySettings,
    author: &str,
) -> Result<NotifySettings, OpError> {
    if !crate::members::profile::is_language_tag(&s.default_language) {
        return Err(invalid("default_language is a language tag like fa or en"));
    }
    if s.expiring_days.len() > 4 || s.expiring_days.iter().any(|d| *d == 0 || *d > 365) {
        return Err(invalid("expiring_days: at most 4 values, each 1 to 365"));
    }
    if s.schedule_hour > 23 {
        return Err(invalid("schedule_hour is 0 to 23"));
    }
    for (name, cap) in [
        ("max_per_day", s.max_per_day),
        ("max_per_week", s.max_per_week),
    ] {
        if cap.is_some_and(|n| !(1..=1000).contains(&n)) {
            return Err(invalid(format!("{name} is 1 to 1000")));
        }
    }
    match (&s.quiet_from, &s.quiet_until) {
        (None, None) => {}
        (Some(a), Some(b)) if time_of_day(a).is_some() && time_of_day(b).is_some() && a != b => {}
        _ => {
            return Err(invalid(
                "quiet_from and quiet_until: both or neither, different times HH:MM",
            ))
        }
    }
    let note = super::programme::change_note(author, &s.reason)?;
    s.author = note.author;
    s.reason = note.reason;
    s.expiring_days.sort_unstable();
    s.expiring_days.dedup();
    ops.registry.set_notify_settings(s).map_err(registry)
}

/// Records a message template. Blocking.
pub fn put_template(
    ops: &Ops,
    mut t: TemplateRecord,
    author: &str,
) -> Result<TemplateRecord, OpError> {
    if !KINDS.contains(&t.event.as_str()) && !MESSAGE_KINDS.contains(&t.event.as_str()) {
        return Err(invalid(format!(
            "event: {:?} is not an event type",
            t.event
        )));
    }
    if !crate::members::profile::is_language_tag(&t.language) {
        return Err(invalid("language is a language tag like fa or en"));
    }
    check_text("body", &t.body)?;
    if let Some(s) = &t.subject {
        check_text("subject", s)?;
    }
    t.author = author.to_string();
    t.updated_at_ms = Timestamp::now().0;
    let start = ledger::journal::last_position(&ops.ledger.read_snapshot()?)?;
    ops.registry.put_template(&t, start).map_err(registry)?;
    Ok(t)
}

/// Deletes a template. Blocking.
pub fn delete_template(
    ops: &Ops,
    event: &str,
    channel: Channel,
    language: &str,
) -> Result<(), OpError> {
    match ops
        .registry
        .delete_template(event, channel, language)
        .map_err(registry)?
    {
        true => Ok(()),
        false => Err(OpError::new(Kind::NotFound, "no such template")),
    }
}

/// Records the provider of `channel`. Blocking.
pub fn put_provider(
    ops: &Ops,
    channel: Channel,
    config: ProviderConfig,
    author: &str,
) -> Result<ProviderRecord, OpError> {
    if !crate::events::delivery::usable_url(&config.url) {
        return Err(invalid("url must be http or https, with a host"));
    }
    if config.headers.len() > HEADERS_MAX
        || config
            .headers
            .iter()
            .any(|h| !valid_header(&h.name, &h.value))
    {
        return Err(invalid(format!(
            "headers: at most {HEADERS_MAX} valid name and value pairs"
        )));
    }
    if config.body_template.trim().is_empty() || config.body_template.len() > 8_000 {
        return Err(invalid("body_template must be 1 to 8000 bytes"));
    }
    check_template(&config.body_template).map_err(|e| invalid(format!("body_template: {e}")))?;
    if !valid_header("content-type", &config.content_type) {
        return Err(invalid("content_type is not a header value"));
    }
    let rec = ProviderRecord {
        channel,
        config,
        author: author.to_string(),
        updated_at_ms: Timestamp::now().0,
    };
    ops.registry.put_provider(&rec).map_err(registry)?;
    Ok(rec)
}

/// A broadcast as an operator asks for it.
pub struct BroadcastDraft {
    /// Name.
    pub name: String,
    /// The segment.
    pub segment: u32,
    /// The channel.
    pub channel: Channel,
    /// Texts per language.
    pub texts: Vec<BroadcastText>,
    /// When (ms since the Unix epoch; now or later).
    pub send_at_ms: i64,
    /// Why.
    pub reason: String,
}

/// Schedules a broadcast. Blocking.
pub fn create_broadcast(
    ops: &Ops,
    d: BroadcastDraft,
    author: &str,
) -> Result<BroadcastRecord, OpError> {
    if d.name.trim().is_empty() || d.name.chars().count() > 100 {
        return Err(invalid("name must be 1 to 100 characters, not all spaces"));
    }
    super::audience::segment(ops, d.segment)?;
    if d.texts.is_empty() || d.texts.len() > 8 {
        return Err(invalid("texts: 1 to 8 languages"));
    }
    for t in &d.texts {
        if !crate::members::profile::is_language_tag(&t.language) {
            return Err(invalid("texts: language is a language tag like fa or en"));
        }
        check_text("texts: body", &t.body)?;
        if let Some(s) = &t.subject {
            check_text("texts: subject", s)?;
        }
    }
    let now = Timestamp::now().0;
    if d.send_at_ms < now - 60_000 {
        return Err(invalid("send_at_ms is in the past"));
    }
    let note = super::programme::change_note(author, &d.reason)?;
    ops.registry
        .put_broadcast(BroadcastRecord {
            id: 0,
            name: d.name,
            segment: d.segment,
            channel: d.channel,
            texts: d.texts,
            send_at_ms: d.send_at_ms.max(now),
            status: "scheduled".into(),
            queued: 0,
            queued_through: 0,
            author: note.author,
            reason: note.reason,
        })
        .map_err(registry)
}

/// Cancels a broadcast not yet queued in full. Blocking.
pub fn cancel_broadcast(ops: &Ops, id: u32) -> Result<BroadcastRecord, OpError> {
    let mut b = ops
        .registry
        .broadcasts()
        .map_err(registry)?
        .into_iter()
        .find(|b| b.id == id)
        .ok_or_else(|| OpError::new(Kind::NotFound, "no such broadcast"))?;
    if b.status == "sent" {
        return Err(invalid("the broadcast was queued in full already"));
    }
    b.status = "cancelled".into();
    ops.registry.put_broadcast(b).map_err(registry)
}

// ---- the engine ---------------------------------------------------------------------------

/// Queues the messages of events committed since the cursor. Blocking. Returns messages
/// queued.
pub fn queue_from_journal(ops: &Ops) -> Result<usize, OpError> {
    if !ops.audience.began() {
        // The audience knows no member's reach before it has read the profiles: the events
        // wait for a later round rather than being queued to no one.
        return Ok(0);
    }
    let Some(cursor) = ops.registry.notify_cursor().map_err(registry)? else {
        return Ok(0);
    };
    let mut channels: HashMap<String, Vec<Channel>> = HashMap::new();
    for t in ops.registry.templates().map_err(registry)? {
        let v = channels.entry(t.event).or_default();
        if !v.contains(&t.channel) {
            v.push(t.channel);
        }
    }
    let snap = ops.ledger.read_snapshot()?;
    let mut jobs = Vec::new();
    let mut last = None;
    let mut batches = 0;
    let now = Timestamp::now().0;
    ops.ledger
        .for_each_batch_after(&snap, cursor.after.as_deref(), &mut |pos, _, txs| {
            for e in txs.iter().copied().flat_map(events_of) {
                let (Some(m), Some(chs)) = (e.member_id, channels.get(&e.kind)) else {
                    continue;
                };
                // A member who never agreed to a channel, or has no address for it, gets no
                // message there (the audience knows, from the profiles); consent withdrawn since is
                // caught when the message goes, and logged.
                for c in chs
                    .iter()
                    .filter(|c| ops.audience.reachable(MemberId(m), **c))
                {
                    jobs.push(Job {
                        id: format!("{}:{}", e.id, channel_name(*c)),
                        member: m,
                        channel: *c,
                        source: JobSource::Event(e.clone()),
                        due_ms: now,
                        attempts: 0,
                    });
                }
            }
            last = Some(pos.to_vec());
            batches += 1;
            Ok(batches < BATCHES_PER_ROUND)
        })?;
    if last.is_none() {
        return Ok(0);
    }
    ops.registry
        .queue_from_journal(&jobs, &NotifyCursor { after: last })
        .map_err(registry)?;
    Ok(jobs.len())
}

/// Queues `event` (one of [`MESSAGE_KINDS`], not from the journal) for its member on every
/// channel with a template for it and an address the audience knows. Blocking. Returns the
/// messages queued.
pub fn notify_member(ops: &Ops, event: Event) -> Result<usize, OpError> {
    let Some(m) = event.member_id else {
        return Ok(0);
    };
    // One member: read from the profile itself, which no start or catch-up of the audience's
    // can be behind.
    let profile = ops.registry.profile(MemberId(m)).map_err(registry)?;
    let mut chs: Vec<Channel> = Vec::new();
    for t in ops.registry.templates().map_err(registry)? {
        if t.event == event.kind && !chs.contains(&t.channel) {
            chs.push(t.channel);
        }
    }
    let now = Timestamp::now().0;
    let jobs: Vec<Job> = chs
        .into_iter()
        .filter(|c| {
            profile
                .as_ref()
                .is_some_and(|p| super::audience::profile_reaches(p, *c))
        })
        .map(|c| Job {
            id: format!("{}:{}", event.id, channel_name(c)),
            member: m,
            channel: c,
            source: JobSource::Event(event.clone()),
            due_ms: now,
            attempts: 0,
        })
        .collect();
    ops.registry.queue_jobs(&jobs).map_err(registry)?;
    Ok(jobs.len())
}

fn channel_name(c: Channel) -> &'static str {
    match c {
        Channel::Sms => "sms",
        Channel::Email => "email",
        Channel::Push => "push",
    }
}

/// Queues the next chunk of every broadcast that is due. Blocking. Returns messages queued.
pub fn queue_broadcasts(ops: &Ops) -> Result<usize, OpError> {
    let now = Timestamp::now().0;
    let mut queued = 0;
    for mut b in ops.registry.broadcasts().map_err(registry)? {
        if !(b.status == "scheduled" || b.status == "sending") || b.send_at_ms > now {
            continue;
        }
        let s = super::audience::segment(ops, b.segment)?;
        let rest =
            super::audience::members_after(ops, &s.rules, b.queued_through, BROADCAST_CHUNK)?;
        let jobs: Vec<Job> = rest
            .iter()
            .map(|m| Job {
                id: format!("B{}-{m}:{}", b.id, channel_name(b.channel)),
                member: *m,
                channel: b.channel,
                source: JobSource::Broadcast(b.id),
                due_ms: now,
                attempts: 0,
            })
            .collect();
        b.queued += jobs.len() as u64;
        if let Some(m) = rest.last() {
            b.queued_through = *m;
        }
        b.status = if rest.len() < BROADCAST_CHUNK {
            "sent"
        } else {
            "sending"
        }
        .into();
        ops.registry.queue_broadcast(&b, &jobs).map_err(registry)?;
        queued += jobs.len();
    }
    Ok(queued)
}

/// What to do with a due message.
pub enum Next {
    /// Post `body` to the provider.
    Send {
        /// The provider.
        provider: ProviderConfig,
        /// The request body.
        body: String,
        /// The language written in.
        language: String,
    },
    /// Nothing to send: log this status.
    Skip(&'static str, Option<String>),
    /// Quiet hours: due again then (ms since the Unix epoch).
    Later(i64),
}

fn event_name(job: &Job) -> String {
    match &job.source {
        JobSource::Event(e) => e.kind.clone(),
        JobSource::Broadcast(_) => "broadcast".into(),
    }
}

/// What a round of sending reads once: the settings and the templates.
#[derive(Clone)]
pub struct Round {
    /// The settings.
    pub settings: NotifySettings,
    /// Every template.
    pub templates: Vec<TemplateRecord>,
}

/// Decides what to do with `job` now. Blocking.
pub fn prepare(ops: &Ops, job: &Job, round: &Round) -> Result<Next, OpError> {
    let settings = &round.settings;
    let m = MemberId(job.member);
    match ops.ledger.member_state(m)? {
        Some(s) if s.standing() == Standing::Active => {}
        _ => return Ok(Next::Skip("not-active", None)),
    }
    let Some(profile) = ops.registry.profile(m).map_err(registry)? else {
        return Ok(Next::Skip("no-address", None));
    };
    if !profile.consent.get(&job.channel).is_some_and(|c| c.granted) {
        return Ok(Next::Skip("no-consent", None));
    }
    let to = match job.channel {
        Channel::Sms => profile.phone.clone(),
        Channel::Email => profile.email.clone(),
        Channel::Push => Some(m.0.to_string()),
    };
    let Some(to) = to else {
        return Ok(Next::Skip("no-address", None));
    };
    let now = Timestamp::now().0;
    let here = local(ops, now);
    if let (Some(from), Some(until)) = (
        settings.quiet_from.as_deref().and_then(time_of_day),
        settings.quiet_until.as_deref().and_then(time_of_day),
    ) {
        if let Some(end) = after_quiet_hours(here.time(), from, until) {
            let mut date = here.date_naive();
            if end <= here.time() {
                date = date.succ_opt().unwrap_or(date);
            }
            let at = programme_tz(ops)
                .from_local_datetime(&date.and_time(end))
                .earliest()
                .map_or(now + 3_600_000, |t| t.timestamp_millis());
            return Ok(Next::Later(at));
        }
    }
    let recent = ops
        .registry
        .sent_to(m, now - 7 * 86_400_000, 10_000)
        .map_err(registry)?;
    let sent = |since: i64| {
        recent
            .iter()
            .filter(|r| r.status == "sent" && r.at_ms >= since)
            .count() as u32
    };
    if settings
        .max_per_day
        .is_some_and(|n| sent(now - 86_400_000) >= n)
        || settings
            .max_per_week
            .is_some_and(|n| sent(now - 7 * 86_400_000) >= n)
    {
        return Ok(Next::Skip("capped", None));
    }
    let Some(provider) = ops.registry.provider(job.channel).map_err(registry)? else {
        return Ok(Next::Skip("no-provider", None));
    };
    let wanted = profile
        .language
        .as_deref()
        .map(|l| l.split('-').next().unwrap_or(l).to_string())
        .unwrap_or_else(|| settings.default_language.clone());
    let texts: Vec<(String, Option<String>, String)> = match &job.source {
        JobSource::Event(e) => round
            .templates
            .iter()
            .filter(|t| t.event == e.kind && t.channel == job.channel)
            .map(|t| (t.language.clone(), t.subject.clone(), t.body.clone()))
            .collect(),
        JobSource::Broadcast(id) => ops
            .registry
            .broadcasts()
            .map_err(registry)?
            .into_iter()
            .find(|b| b.id == *id)
            .map(|b| {
                b.texts
                    .into_iter()
                    .map(|t| (t.language, t.subject, t.body))
                    .collect()
            })
            .unwrap_or_default(),
    };
    let pick = |lang: &str| {
        texts
            .iter()
            .find(|t| t.0 == lang || t.0.starts_with(&format!("{lang}-")))
    };
    let Some((language, subject, body)) = pick(&wanted)
        .or_else(|| pick(&settings.default_language))
        .or_else(|| texts.first())
        .cloned()
    else {
        return Ok(Next::Skip("no-template", None));
    };
    let vars = message_vars(ops, job, &profile.name, here.date_naive());
    let style = Style {
        language: &language,
        persian_digits: settings.persian_digits,
    };
    let text = render_message(&body, style, &vars).map_err(|e| invalid(e.to_string()))?;
    let subject = subject
        .map(|s| render_message(&s, style, &vars))
        .transpose()
        .map_err(|e| invalid(e.to_string()))?;
    let request = render_provider_body(
        &provider.config.body_template,
        &json!({"to": to, "subject": subject, "text": text, "language": language,
                "message_id": job.id, "member_id": job.member}),
    );
    match request {
        Ok(body) => Ok(Next::Send {
            provider: provider.config,
            body,
            language,
        }),
        Err(e) => Ok(Next::Skip("failed", Some(e.to_string()))),
    }
}

/// The values a message may name.
fn message_vars(
    ops: &Ops,
    job: &Job,
    name: &Option<String>,
    today: NaiveDate,
) -> serde_json::Value {
    let mut v = json!({"member_id": job.member, "name": name, "date": today.to_string()});
    if let JobSource::Event(e) = &job.source {
        v["points"] = json!(e.points.map(i64::abs));
        v["balance"] = json!(e.member_balance_after);
        v["detail"] = json!(e.detail);
        v["date"] = json!(local(ops, e.occurred_at_ms).date_naive().to_string());
        if let Some(at) = e.expires_at_ms {
            v["expires_on"] = json!(local(ops, at).date_naive().to_string());
            v["days"] = json!(e.detail.as_deref().and_then(|d| d.split(' ').next()));
        }
        if let Some(p) = e
            .partner_id
            .and_then(|p| ops.registry.partner(ledger::PartnerId(p)))
        {
            v["partner"] = json!(p.name);
        }
    } else if let Ok(Some(b)) = ops.ledger.balance(MemberId(job.member)) {
        v["balance"] = json!(b.posted.0);
    }
    v
}

/// Logs the outcome of `job` (or queues its retry). Blocking.
pub fn finish(
    ops: &Ops,
    job: &Job,
    status: &str,
    language: Option<String>,
    provider_status: Option<u16>,
) -> Result<(), OpError> {
    let record = SendRecord {
        at_ms: Timestamp::now().0,
        member_id: job.member,
        message_id: job.id.clone(),
        event: event_name(job),
        channel: job.channel,
        language,
        status: status.to_string(),
        attempts: job.attempts,
        provider_status,
    };
    metrics::counter!("notifications_total", "status" => status.to_string()).increment(1);
    ops.registry
        .finish_job(job, Some(&record), None)
        .map_err(registry)
}

/// Moves `job` to `due_ms` (quiet hours, or a retry after `attempts`). Blocking.
pub fn postpone(ops: &Ops, job: &Job, due_ms: i64, attempts: u32) -> Result<(), OpError> {
    let next = Job {
        due_ms,
        attempts,
        ..job.clone()
    };
    ops.registry
        .finish_job(job, None, Some(next))
        .map_err(registry)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, OpError> + Send + 'static,
) -> Result<T, OpError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| OpError::new(Kind::Internal, format!("notification task failed: {e}")))?
}

/// Sends what is due, one message after another. Returns messages handled.
async fn send_due(
    ops: &std::sync::Arc<Ops>,
    client: &crate::events::delivery::Client,
) -> Result<usize, OpError> {
    let o = ops.clone();
    let (jobs, round) = blocking(move || {
        let j = o
            .registry
            .due_jobs(Timestamp::now().0, SENDS_PER_ROUND)
            .map_err(registry)?;
        if j.is_empty() {
            return Ok((j, None));
        }
        let round = Round {
            settings: o.registry.notify_settings().map_err(registry)?,
            templates: o.registry.templates().map_err(registry)?,
        };
        Ok((j, Some(round)))
    })
    .await?;
    let Some(round) = round else {
        return Ok(0);
    };
    let n = jobs.len();
    // Each member's messages in the order they fell due; members SENDS_AT_ONCE at a time. A
    // provider that answers in 100 ms was sent 132 messages a second so, against 9 one at a
    // time (docs/benchmarks.md).
    let round = &round;
    futures::stream::iter(super::grouped(jobs, |j| j.member).into_iter().map(Ok))
        .try_for_each_concurrent(SENDS_AT_ONCE, |jobs| async move {
            for job in jobs {
                send_one(ops, client, job, round).await?;
            }
            Ok::<_, OpError>(())
        })
        .await?;
    Ok(n)
}

/// Prepares `job`, sends it if it is to go now, and records the outcome or the next attempt.
async fn send_one(
    ops: &std::sync::Arc<Ops>,
    client: &crate::events::delivery::Client,
    job: Job,
    round: &Round,
) -> Result<(), OpError> {
    let (o, j, r) = (ops.clone(), job.clone(), round.clone());
    let next = blocking(move || prepare(&o, &j, &r)).await?;
    let o = ops.clone();
    match next {
        Next::Skip(status, why) => {
            if let Some(why) = why {
                tracing::warn!(message = %job.id, %why, "message not sent");
            }
            blocking(move || finish(&o, &job, status, None, None)).await
        }
        Next::Later(at) => blocking(move || postpone(&o, &job, at, job.attempts)).await,
        Next::Send {
            provider,
            body,
            language,
        } => {
            let outcome = crate::notify::provider::send(client, &provider, &job.id, body).await;
            let attempts = job.attempts + 1;
            let done = Job {
                attempts,
                ..job.clone()
            };
            blocking(move || match outcome {
                Ok(status) => finish(&o, &done, "sent", Some(language), Some(status)),
                Err((status, _)) if attempts >= ATTEMPTS_MAX => {
                    finish(&o, &done, "failed", Some(language), status)
                }
                Err(_) => {
                    let wait = 500i64 << attempts.min(12);
                    postpone(&o, &job, Timestamp::now().0 + wait, attempts)
                }
            })
            .await
        }
    }
}

// ---- the daily schedule -------------------------------------------------------------------

/// The notices of local day `day`: birthdays, anniversaries, and (`expiring`) points expiring
/// in each of `settings.expiring_days`.
fn notices_of(
    ops: &Ops,
    day: NaiveDate,
    settings: &NotifySettings,
    expiring: bool,
) -> Vec<Command> {
    let d = day_number(day);
    let tz = programme_tz(ops);
    let mut out = Vec::new();
    let notice = |kind: &str, m: u64, n: Notice| Command::Notice {
        key: IdemKey::operator(format!("notice/{kind}/{d}/{m}")),
        member: MemberId(m),
        notice: n,
    };
    ops.audience.with_facts(|facts| {
        let (rows, lots) = (&facts.rows, &facts.expiring);
        let from_days = |x: i32| {
            NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch")
                + chrono::Duration::days(i64::from(x))
        };
        let same_day = |born: NaiveDate| {
            // 29 February counts on 28 February in common years.
            let (mo, da) = if born.month() == 2
                && born.day() == 29
                && NaiveDate::from_ymd_opt(day.year(), 2, 29).is_none()
            {
                (2, 28)
            } else {
                (born.month(), born.day())
            };
            mo == day.month() && da == day.day()
        };
        for (m, r) in rows.iter().enumerate() {
            if !r.enrolled || !r.active {
                continue;
            }
            if r.birth != i32::MIN && same_day(from_days(r.birth)) {
                out.push(notice("birthday", m as u64, Notice::Birthday { day: d }));
            }
            if r.enrolled_day != i32::MIN {
                let e = from_days(r.enrolled_day);
                let years = day.year() - e.year();
                if years >= 1 && same_day(e) {
                    out.push(notice(
                        "anniversary",
                        m as u64,
                        Notice::Anniversary {
                            day: d,
                            years: years as u16,
                        },
                    ));
                }
            }
        }
        if expiring {
            for n in &settings.expiring_days {
                let target = day + chrono::Duration::days(i64::from(*n));
                for (m, buckets) in lots {
                    if !rows.get(*m as usize).is_some_and(|r| r.active) {
                        continue;
                    }
                    let due: Vec<&(i64, i64)> = buckets
                        .iter()
                        .filter(|(at, _)| {
                            chrono::DateTime::from_timestamp_millis(*at)
                                .map(|t| tz.from_utc_datetime(&t.naive_utc()).date_naive())
                                == Some(target)
                        })
                        .collect();
                    let points: i64 = due.iter().map(|(_, p)| p).sum();
                    if let (Some(first), true) = (due.first(), points > 0) {
                        out.push(notice(
                            &format!("expiring-{n}"),
                            *m,
                            Notice::Expiring {
                                day: d,
                                days: *n,
                                on: Timestamp(first.0),
                                points: Points(points),
                            },
                        ));
                    }
                }
            }
        }
        out
    })
}

/// Posts the notices of every local day due since the last run (at most
/// [`CATCH_UP_DAYS`] back; expiry reminders only for today). Blocking. Returns notices posted.
pub fn run_schedule(ops: &Ops, force: bool) -> Result<usize, OpError> {
    let settings = ops.registry.notify_settings().map_err(registry)?;
    let now = local(ops, Timestamp::now().0);
    let today = now.date_naive();
    let t = day_number(today);
    let done = ops.registry.scheduled_through().map_err(registry)?;
    let done_today = done.is_some_and(|d| d >= t);
    if !force && (done_today || now.hour() < u32::from(settings.schedule_hour)) {
        return Ok(0);
    }
    ops.audience.catch_up(ops)?;
    // A forced run after today's (an operator who changed the settings or the policy since)
    // runs today again: notices are keyed by occasion, member and day, so only what is new
    // posts.
    let first = match done {
        Some(_) if done_today => t,
        Some(d) => (d + 1).max(t.saturating_sub(CATCH_UP_DAYS)),
        None => t,
    };
    let mut posted = 0;
    for d in first..=t {
        let day = NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch")
            + chrono::Duration::days(i64::from(d));
        let cmds = notices_of(ops, day, &settings, d == t);
        let mut pending = Vec::with_capacity(cmds.len());
        for c in cmds {
            pending.push(ops.ledger.submit(c)?);
        }
        for p in pending {
            match p.blocking_recv() {
                Ok(Ok(r)) => posted += usize::from(!r.replayed),
                Ok(Err(ledger::LedgerError::Rejected(r))) => {
                    tracing::info!(rejection = %r, "notice not posted")
                }
                Ok(Err(e)) => return Err(e.into()),
                Err(_) => return Err(ledger::LedgerError::ShuttingDown.into()),
            }
        }
        ops.registry.set_scheduled_through(d).map_err(registry)?;
    }
    Ok(posted)
}

/// Runs the engine while the gateway runs: the schedule, the journal, broadcasts, sends.
pub fn spawn(ops: Weak<Ops>) {
    tokio::spawn(async move {
        let client = crate::events::delivery::client();
        // A round that found a full round of messages due goes on at once: a backlog (a
        // broadcast) is sent as fast as the provider answers, not a round every EVERY.
        let mut pause = true;
        loop {
            if pause {
                tokio::time::sleep(EVERY).await;
            }
            let Some(o) = ops.upgrade() else { return };
            let prep = o.clone();
            let r = blocking(move || {
                run_schedule(&prep, false)?;
                queue_from_journal(&prep)?;
                queue_broadcasts(&prep)
            })
            .await;
            if let Err(e) = r {
                e.log_round("notification round");
            }
            pause = match send_due(&o, &client).await {
                Ok(sent) => sent < SENDS_PER_ROUND,
                Err(e) => {
                    e.log_round("sending notifications");
                    true
                }
            };
        }
    });
}

/// Where the outbox of messages stands.
pub struct Status {
    /// Messages queued, not yet sent.
    pub queued: u64,
    /// The newest outcomes.
    pub recent: Vec<SendRecord>,
    /// Outcomes of the newest, by status.
    pub by_status: BTreeMap<String, u64>,
}

/// The outbox's standing and its newest outcomes. Blocking.
pub fn status(ops: &Ops, limit: usize) -> Result<Status, OpError> {
    let recent = ops.registry.sent_log(limit).map_err(registry)?;
    let mut by_status = BTreeMap::new();
    for r in &recent {
        *by_status.entry(r.status.clone()).or_insert(0) += 1;
    }
    Ok(Status {
        queued: ops.registry.queued_jobs().map_err(registry)?,
        recent,
        by_status,
    })
}

/// Member `m`'s messages, newest first. Blocking.
pub fn member_log(ops: &Ops, m: MemberId, limit: usize) -> Result<Vec<SendRecord>, OpError> {
    if ops.ledger.balance(m)?.is_none() {
        return Err(OpError::new(Kind::UnknownMember, "no such member"));
    }
    ops.registry.sent_to(m, 0, limit).map_err(registry)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::members::Profile;
    use crate::ops::ops_on;

    /// The gateway's operations on the store in `dir`, with nothing running beside them (the
    /// audience is not caught up until asked).
    fn sms(event: &str) -> TemplateRecord {
        TemplateRecord {
            event: event.into(),
            channel: Channel::Sms,
            language: "en".into(),
            subject: None,
            body: "Hello".into(),
            author: String::new(),
            updated_at_ms: 0,
        }
    }

    /// Until the audience has read the profiles after a start it knows no member's reach, and a
    /// message decided then would go to no one. The journal's events wait for a later round,
    /// and a member's own message reads the profile; none is lost.
    #[test]
    fn no_message_is_decided_before_the_audience_has_read_the_profiles() {
        let dir = tempfile::tempdir().expect("temp dir");
        let m = {
            let ops = ops_on(dir.path());
            put_template(&ops, sms("member.enrolled"), "ops").expect("template");
            put_template(&ops, sms("claim.updated"), "ops").expect("template");
            let m = super::super::operator::enrol_member(&ops).expect("enrol");
            let p = Profile {
                phone: Some("+989121234567".into()),
                ..Profile::default()
            };
            super::super::profiles::put(&ops, m, p, "ops").expect("profile");
            super::super::profiles::set_consent(&ops, m, Channel::Sms, true, "portal", "ops")
                .expect("consent");
            m
        };
        // A start: the audience has read nothing yet.
        let ops = ops_on(dir.path());
        assert!(!ops.audience.began());
        let cursor = ops.registry.notify_cursor().expect("cursor");
        assert_eq!(queue_from_journal(&ops).expect("round"), 0);
        assert_eq!(
            ops.registry.notify_cursor().expect("cursor"),
            cursor,
            "the events wait"
        );
        let claim = Event {
            id: "claim-1-1".into(),
            kind: "claim.updated".into(),
            occurred_at_ms: 0,
            transaction_id: String::new(),
            member_id: Some(m.0),
            member: None,
            partner_id: None,
            points: None,
            member_balance_after: None,
            detail: None,
            expires_at_ms: None,
        };
        assert_eq!(notify_member(&ops, claim).expect("claim message"), 1);
        assert!(!ops.audience.began(), "read from the profile");
        ops.audience.catch_up(&ops).expect("catch-up");
        assert_eq!(queue_from_journal(&ops).expect("round"), 1, "the welcome");
        assert_eq!(ops.registry.queued_jobs().expect("jobs"), 2);
    }
}
