//! Notification records: settings (`G Q`), templates (`G t`), providers (`G P`), the outbox
//! of messages to send (`G J`, by when they are due), the send log (`G Z`: per member, for
//! caps and the member's history; `G W`: by time, for operators), broadcasts (`G B`), the
//! notifier's journal cursor (`G z`) and the last scheduled day (`G T`).
//!
//! No record of the log or the outbox holds an address or a rendered text: those are made from
//! the profile when a message goes, so an erasure leaves nothing of them behind.

use super::{be_u32, json, key1, unjson, Registry, RegistryError};
use crate::events::Event;
use crate::members::Channel;
use crate::notify::provider::ProviderConfig;
use ledger::keys::gateway::{
    BROADCAST, MESSAGE_JOB as JOB, NEXT_CAMPAIGN, NOTIFY_CURSOR as CURSOR,
    NOTIFY_SETTINGS as SETTINGS, PROVIDER, SCHEDULED_DAY as SCHEDULED, SENT_BY_MEMBER,
    SENT_BY_TIME, TEMPLATE,
};
use ledger::store::{prefix_end, Durability, Snapshot, Store, WriteSet};
use ledger::MemberId;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU32, Ordering};
use utoipa::ToSchema;

/// The channel's byte in keys.
pub fn channel_byte(c: Channel) -> u8 {
    match c {
        Channel::Sms => 0,
        Channel::Email => 1,
        Channel::Push => 2,
    }
}

/// Programme-wide notification settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NotifySettings {
    /// The language of members whose profile names none, or one with no template.
    pub default_language: String,
    /// Days before points expire that members are told (`[30, 7]`).
    pub expiring_days: Vec<u16>,
    /// The local hour the daily schedule (birthdays, anniversaries, expiry reminders) runs.
    pub schedule_hour: u8,
    /// Quiet hours, local time (`22:00` to `08:00`): messages due then wait until they end.
    pub quiet_from: Option<String>,
    /// See `quiet_from`.
    pub quiet_until: Option<String>,
    /// Most messages a member gets a day, all channels together (`None`: no cap).
    pub max_per_day: Option<u32>,
    /// Most messages a member gets in seven days.
    pub max_per_week: Option<u32>,
    /// Numbers in Persian text in Persian digits.
    pub persian_digits: bool,
    /// Version, from 1 (0: the defaults, never set).
    pub version: u32,
    /// Who set them.
    pub author: String,
    /// Why.
    pub reason: String,
}

impl Default for NotifySettings {
    fn default() -> Self {
        NotifySettings {
            default_language: "fa".into(),
            expiring_days: vec![30, 7],
            schedule_hour: 9,
            quiet_from: Some("22:00".into()),
            quiet_until: Some("08:00".into()),
            max_per_day: Some(3),
            max_per_week: Some(10),
            persian_digits: true,
            version: 0,
            author: String::new(),
            reason: "default".into(),
        }
    }
}

/// A message template: for one event type (or a broadcast's own text), channel and language.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TemplateRecord {
    /// The event type it answers (`points.earned`, `member.birthday`, ...).
    pub event: String,
    /// The channel.
    pub channel: Channel,
    /// The language tag (`fa`, `en`).
    pub language: String,
    /// The subject (email).
    pub subject: Option<String>,
    /// The text, a template over the event's values (`name`, `points`, `balance`, `detail`,
    /// `date`, `partner`, `member_id`).
    pub body: String,
    /// Who wrote it.
    pub author: String,
    /// When (ms since the Unix epoch).
    pub updated_at_ms: i64,
}

/// A provider for a channel, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProviderRecord {
    /// The channel.
    pub channel: Channel,
    /// How to reach it.
    pub config: ProviderConfig,
    /// Who set it.
    pub author: String,
    /// When.
    pub updated_at_ms: i64,
}

/// What a queued message is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobSource {
    /// An event of the outbox.
    Event(Event),
    /// A broadcast to a segment.
    Broadcast(u32),
}

/// A message waiting to go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// Stable id (`8519680-0:sms`, `B3-42:sms`): the provider's idempotency key.
    pub id: String,
    /// The member.
    pub member: u64,
    /// The channel.
    pub channel: Channel,
    /// What it says.
    pub source: JobSource,
    /// When it is due (ms since the Unix epoch).
    pub due_ms: i64,
    /// Attempts made.
    pub attempts: u32,
}

/// One message's outcome, as logged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SendRecord {
    /// When (ms since the Unix epoch).
    pub at_ms: i64,
    /// The member.
    pub member_id: u64,
    /// The message's id.
    pub message_id: String,
    /// The event type, or `broadcast`.
    pub event: String,
    /// The channel.
    pub channel: Channel,
    /// The language it was written in.
    pub language: Option<String>,
    /// `sent`, `failed`, `no-consent`, `no-address`, `no-template`, `no-provider`, `capped`,
    /// `not-active`.
    pub status: String,
    /// Attempts made.
    pub attempts: u32,
    /// The provider's HTTP status, when it answered.
    pub provider_status: Option<u16>,
}

/// A message to a segment, at a time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BroadcastRecord {
    /// Its id.
    pub id: u32,
    /// A name for operators.
    pub name: String,
    /// The segment it goes to.
    pub segment: u32,
    /// The channel.
    pub channel: Channel,
    /// The text per language: `[language, subject or null, body]`.
    pub texts: Vec<BroadcastText>,
    /// When it goes (ms since the Unix epoch).
    pub send_at_ms: i64,
    /// `scheduled`, `sending`, `sent` or `cancelled`.
    pub status: String,
    /// Members it was queued for so far.
    pub queued: u64,
    /// The last member id queued (it queues in id order).
    pub queued_through: u64,
    /// Who made it.
    pub author: String,
    /// Why.
    pub reason: String,
}

/// A broadcast's text in one language.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BroadcastText {
    /// Language tag.
    pub language: String,
    /// Subject (email).
    pub subject: Option<String>,
    /// The text, a template over `name`, `balance`, `member_id`.
    pub body: String,
}

fn template_key(event: &str, channel: Channel, language: &str) -> Vec<u8> {
    let mut body = event.as_bytes().to_vec();
    body.push(0);
    body.push(channel_byte(channel));
    body.extend_from_slice(language.as_bytes());
    key1(TEMPLATE, &body)
}

fn job_key(due_ms: i64, id: &str) -> Vec<u8> {
    let mut body = (due_ms.max(0) as u64).to_be_bytes().to_vec();
    body.extend_from_slice(id.as_bytes());
    key1(JOB, &body)
}

static SEND_SEQ: AtomicU32 = AtomicU32::new(0);

fn sent_keys(r: &SendRecord) -> (Vec<u8>, Vec<u8>) {
    let seq = SEND_SEQ.fetch_add(1, Ordering::Relaxed).to_be_bytes();
    let rand = rand::random::<u32>().to_be_bytes();
    let at = (r.at_ms.max(0) as u64).to_be_bytes();
    let mut by_member = r.member_id.to_be_bytes().to_vec();
    by_member.extend_from_slice(&at);
    by_member.extend_from_slice(&seq);
    by_member.extend_from_slice(&rand);
    let mut by_time = at.to_vec();
    by_time.extend_from_slice(&seq);
    by_time.extend_from_slice(&rand);
    (
        key1(SENT_BY_MEMBER, &by_member),
        key1(SENT_BY_TIME, &by_time),
    )
}

impl Registry {
    /// The notification settings (the defaults until set).
    pub fn notify_settings(&self) -> Result<NotifySettings, RegistryError> {
        Ok(self
            .store
            .snapshot()?
            .get(&key1(SETTINGS, &[]))?
            .map(|v| unjson(&v))
            .transpose()?
            .unwrap_or_default())
    }

    /// Records new settings, numbered after the current ones.
    pub fn set_notify_settings(
        &self,
        mut s: NotifySettings,
    ) -> Result<NotifySettings, RegistryError> {
        self.transact(&mut |txn| {
            let k = key1(SETTINGS, &[]);
            let old: NotifySettings = txn
                .get(&k)?
                .map(|v| unjson(&v))
                .transpose()?
                .unwrap_or_default();
            s.version = old.version + 1;
            let mut ws = WriteSet::default();
            ws.set_owned(k, json(&s));
            Ok((ws, s.clone()))
        })
    }

    /// Records a template (replacing the one for its event, channel and language). With
    /// `start_after`, starts the notifier's cursor there if it has none (the first template:
    /// events from now on).
    pub fn put_template(
        &self,
        t: &TemplateRecord,
        start_after: Option<Vec<u8>>,
    ) -> Result<(), RegistryError> {
        self.transact(&mut |txn| {
            let mut ws = WriteSet::default();
            ws.set_owned(template_key(&t.event, t.channel, &t.language), json(t));
            let c = key1(CURSOR, &[]);
            if txn.get(&c)?.is_none() {
                ws.set_owned(
                    c,
                    json(&NotifyCursor {
                        after: start_after.clone(),
                    }),
                );
            }
            Ok((ws, ()))
        })
    }

    /// Deletes a template; true when there was one.
    pub fn delete_template(
        &self,
        event: &str,
        channel: Channel,
        language: &str,
    ) -> Result<bool, RegistryError> {
        let k = template_key(event, channel, language);
        let had = self.store.snapshot()?.get(&k)?.is_some();
        let mut ws = WriteSet::default();
        ws.clear(&k);
        self.store.commit(ws, Durability::Sync)?;
        Ok(had)
    }

    /// Every template.
    pub fn templates(&self) -> Result<Vec<TemplateRecord>, RegistryError> {
        let snap = self.store.snapshot()?;
        let begin = key1(TEMPLATE, &[]);
        snap.range(&begin, &prefix_end(&begin), usize::MAX, false)?
            .iter()
            .map(|(_, v)| unjson(v))
            .collect()
    }

    /// Records the provider of a channel.
    pub fn put_provider(&self, p: &ProviderRecord) -> Result<(), RegistryError> {
        let mut ws = WriteSet::default();
        ws.set_owned(key1(PROVIDER, &[channel_byte(p.channel)]), json(p));
        self.store.commit(ws, Durability::Sync)?;
        Ok(())
    }

    /// The provider of `channel`, if configured.
    pub fn provider(&self, channel: Channel) -> Result<Option<ProviderRecord>, RegistryError> {
        self.store
            .snapshot()?
            .get(&key1(PROVIDER, &[channel_byte(channel)]))?
            .map(|v| unjson(&v))
            .transpose()
    }

    /// The notifier's journal cursor (`None`: no template yet, nothing to follow).
    pub fn notify_cursor(&self) -> Result<Option<NotifyCursor>, RegistryError> {
        self.store
            .snapshot()?
            .get(&key1(CURSOR, &[]))?
            .map(|v| unjson(&v))
            .transpose()
    }

    /// Queues `jobs` and moves the cursor to `cursor`, in one durable commit: each event's
    /// messages are queued exactly once.
    pub fn queue_from_journal(
        &self,
        jobs: &[Job],
        cursor: &NotifyCursor,
    ) -> Result<(), RegistryError> {
        let mut ws = WriteSet::default();
        for j in jobs {
            ws.set_owned(job_key(j.due_ms, &j.id), json(j));
        }
        ws.set_owned(key1(CURSOR, &[]), json(cursor));
        self.store.commit(ws, Durability::Sync)?;
        Ok(())
    }

    /// Messages due by `now_ms`, soonest first, at most `limit`.
    pub fn due_jobs(&self, now_ms: i64, limit: usize) -> Result<Vec<Job>, RegistryError> {
        let snap = self.store.snapshot()?;
        let begin = key1(JOB, &[]);
        let end = job_key(now_ms.saturating_add(1), "");
        snap.range(&begin, &end, limit, false)?
            .iter()
            .map(|(_, v)| unjson(v))
            .collect()
    }

    /// Messages queued, in all.
    pub fn queued_jobs(&self) -> Result<u64, RegistryError> {
        let snap = self.store.snapshot()?;
        let begin = key1(JOB, &[]);
        let mut n = 0;
        snap.scan(&begin, &prefix_end(&begin), &mut |_, _| {
            n += 1;
            true
        })?;
        Ok(n)
    }

    /// Finishes `job`: logs `record` and removes the job, or moves it to `retry` (a new due
    /// time) and logs nothing. One durable commit.
    pub fn finish_job(
        &self,
        job: &Job,
        record: Option<&SendRecord>,
        retry: Option<Job>,
    ) -> Result<(), RegistryError> {
        let mut ws = WriteSet::default();
        ws.clear(&job_key(job.due_ms, &job.id));
        if let Some(r) = record {
            let (a, b) = sent_keys(r);
            ws.set_owned(a, json(r));
            ws.set_owned(b, json(r));
        }
        if let Some(next) = retry {
            ws.set_owned(job_key(next.due_ms, &next.id), json(&next));
        }
        self.store.commit(ws, Durability::Sync)?;
        Ok(())
    }

    /// Member `m`'s messages since `since_ms`, newest first, at most `limit`.
    pub fn sent_to(
        &self,
        m: MemberId,
        since_ms: i64,
        limit: usize,
    ) -> Result<Vec<SendRecord>, RegistryError> {
        let snap = self.store.snapshot()?;
        let mut begin = m.0.to_be_bytes().to_vec();
        let prefix = key1(SENT_BY_MEMBER, &begin);
        begin.extend_from_slice(&(since_ms.max(0) as u64).to_be_bytes());
        snap.range(
            &key1(SENT_BY_MEMBER, &begin),
            &prefix_end(&prefix),
            limit,
            true,
        )?
        .iter()
        .map(|(_, v)| unjson(v))
        .collect()
    }

    /// The newest messages of every member, newest first, at most `limit`.
    pub fn sent_log(&self, limit: usize) -> Result<Vec<SendRecord>, RegistryError> {
        let snap = self.store.snapshot()?;
        let begin = key1(SENT_BY_TIME, &[]);
        snap.range(&begin, &prefix_end(&begin), limit, true)?
            .iter()
            .map(|(_, v)| unjson(v))
            .collect()
    }

    /// Records a broadcast: new (id 0) or a change to `b.id`.
    pub fn put_broadcast(&self, mut b: BroadcastRecord) -> Result<BroadcastRecord, RegistryError> {
        self.transact(&mut |txn| {
            let mut ws = WriteSet::default();
            if b.id == 0 {
                let counter = key1(NEXT_CAMPAIGN, b"B");
                let id = match txn.get(&counter)? {
                    Some(v) => be_u32(&v)?,
                    None => 1,
                };
                ws.set_owned(counter, (id + 1).to_be_bytes().to_vec());
                b.id = id;
            }
            ws.set_owned(key1(BROADCAST, &b.id.to_be_bytes()), json(&b));
            Ok((ws, b.clone()))
        })
    }

    /// Queues `jobs`, in one durable commit.
    pub fn queue_jobs(&self, jobs: &[Job]) -> Result<(), RegistryError> {
        let mut ws = WriteSet::default();
        for j in jobs {
            ws.set_owned(job_key(j.due_ms, &j.id), json(j));
        }
        self.store.commit(ws, Durability::Sync)?;
        Ok(())
    }

    /// Queues a broadcast's `jobs` and records its progress `b`, in one durable commit.
    pub fn queue_broadcast(&self, b: &BroadcastRecord, jobs: &[Job]) -> Result<(), RegistryError> {
        let mut ws = WriteSet::default();
        for j in jobs {
            ws.set_owned(job_key(j.due_ms, &j.id), json(j));
        }
        ws.set_owned(key1(BROADCAST, &b.id.to_be_bytes()), json(b));
        self.store.commit(ws, Durability::Sync)?;
        Ok(())
    }

    /// Every broadcast.
    pub fn broadcasts(&self) -> Result<Vec<BroadcastRecord>, RegistryError> {
        let snap = self.store.snapshot()?;
        let begin = key1(BROADCAST, &[]);
        snap.range(&begin, &prefix_end(&begin), usize::MAX, false)?
            .iter()
            .map(|(_, v)| unjson(v))
            .collect()
    }

    /// The last local day the daily schedule finished (days since 1970-01-01).
    pub fn scheduled_through(&self) -> Result<Option<u32>, RegistryError> {
        self.store
            .snapshot()?
            .get(&key1(SCHEDULED, &[]))?
            .map(|v| be_u32(&v))
            .transpose()
    }

    /// Records that the daily schedule finished `day`.
    pub fn set_scheduled_through(&self, day: u32) -> Result<(), RegistryError> {
        let mut ws = WriteSet::default();
        ws.set_owned(key1(SCHEDULED, &[]), day.to_be_bytes().to_vec());
        self.store.commit(ws, Durability::Sync)?;
        Ok(())
    }
}

/// Where the notifier stands in the journal.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifyCursor {
    /// The commit-order position of the last batch whose messages are queued.
    pub after: Option<Vec<u8>>,
}
