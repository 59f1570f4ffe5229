//! Credit-based flow control, as in Flink's network stack: pure bookkeeping, no I/O.
//!
//! One credit is one buffer the receiver holds for a channel. A sender may only send a frame while
//! it holds a credit, so the frames in flight plus the frames queued at the receiver never exceed
//! the buffers the receiver assigned to the channel. Each channel starts with `exclusive` buffers;
//! the receiver's input gate also has a pool of `floating` buffers, which it lends to channels that
//! announce a backlog (the sender says, with each frame, how many more it has queued) and takes
//! back once a channel's backlog is gone. So memory per gate is bounded by
//! `channels * exclusive + floating` frames, and a slow consumer stops its producers instead of
//! growing a queue.
//!
//! Events that are not data (watermarks, end of input; later checkpoint barriers) need no
//! credit but stay in order behind the frames queued before them.

use std::collections::VecDeque;

/// Most frames an output channel holds beyond its credits, when every operator of the task
/// stops emitting once its output blocks (`Output::is_blocked`): the frame whose push found the
/// channel without credit, plus the partly gathered frame the partitioner sends ahead of it.
/// Everything else waits inside the operators (pending output) or upstream (credits). So memory
/// per channel is `(credits + OUTPUT_OVERDRAFT_FRAMES_MAX) * frame bytes`.
pub const OUTPUT_OVERDRAFT_FRAMES_MAX: u32 = 2;

use crate::frame::AnyFrame;

/// What travels over a channel, in order.
#[derive(Debug)]
pub enum ChannelEvent {
    /// A frame of records; takes one credit.
    Frame(AnyFrame),
    /// Event time has reached this value on the channel: no later record has an earlier time
    /// (within the source's declared out-of-orderness).
    Watermark(i64),
    /// The sender's stream became idle (`true`: no records or watermarks for a while, so it must
    /// not hold event time back) or active again (`false`, sent before its next record).
    Idleness(bool),
    /// The sender has sent its last frame.
    EndOfInput,
    /// Checkpoint barrier: everything before it on the channel belongs to checkpoint `id`,
    /// everything after to the next. An unaligned barrier is taken the moment it arrives, ahead
    /// of the frames queued before it (which the checkpoint then stores).
    Barrier {
        /// The checkpoint.
        id: u64,
        /// Whether the checkpoint is taken unaligned.
        unaligned: bool,
    },
}

impl ChannelEvent {
    fn needs_credit(&self) -> bool {
        matches!(self, ChannelEvent::Frame(_))
    }
}

/// Sender side of one channel: credits granted by the receiver and the backlog of events waiting
/// for credit.
#[derive(Debug)]
pub struct CreditSender {
    credits: u32,
    backlog: VecDeque<ChannelEvent>,
    backlog_frames: u32,
    backlog_frames_peak: u32,
}

impl CreditSender {
    /// A sender holding the receiver's initial exclusive credits.
    pub fn new(initial_credits: u32) -> Self {
        CreditSender { credits: initial_credits, backlog: VecDeque::new(), backlog_frames: 0, backlog_frames_peak: 0 }
    }

    /// Queues an event behind those already waiting.
    pub fn enqueue(&mut self, event: ChannelEvent) {
        if event.needs_credit() {
            self.backlog_frames += 1;
            self.backlog_frames_peak = self.backlog_frames_peak.max(self.backlog_frames);
        }
        self.backlog.push_back(event);
    }

    /// The next event that may be sent now, with the backlog (frames still queued behind it) to
    /// announce; `None` if the queue is empty or its head waits for credit.
    pub fn next_sendable(&mut self) -> Option<(ChannelEvent, u32)> {
        let head = self.backlog.front()?;
        if head.needs_credit() {
            if self.credits == 0 {
                return None;
            }
            self.credits -= 1;
            self.backlog_frames -= 1;
        }
        let event = self.backlog.pop_front().expect("head exists");
        Some((event, self.backlog_frames))
    }

    /// Adds credits returned or lent by the receiver.
    pub fn add_credits(&mut self, credits: u32) {
        self.credits = self.credits.checked_add(credits).expect("credit count overflows u32");
    }

    /// The frames waiting for credit, oldest first: what an unaligned checkpoint's barrier
    /// overtakes (and stores).
    pub fn queued_frames(&self) -> impl Iterator<Item = &AnyFrame> {
        self.backlog.iter().filter_map(|event| match event {
            ChannelEvent::Frame(frame) => Some(frame),
            _ => None,
        })
    }

    /// Frames waiting for credit now (the backlog a receiver is told about).
    pub fn backlog_frames(&self) -> u32 {
        self.backlog_frames
    }

    /// Whether events wait for credit.
    pub fn is_blocked(&self) -> bool {
        !self.backlog.is_empty()
    }

    /// Most frames that ever waited for credit at once.
    pub fn backlog_frames_peak(&self) -> u32 {
        self.backlog_frames_peak
    }
}

/// Buffers of one channel at the receiver.
#[derive(Debug, Clone, Copy, Default)]
struct ChannelBuffers {
    /// Buffers reserved for the channel alone.
    exclusive: u32,
    /// Buffers reserved for the channel: exclusive ones plus floating ones lent to it.
    assigned: u32,
    /// Frames received and not yet consumed.
    queued: u32,
    /// Backlog the sender announced with its last frame.
    backlog: u32,
    /// Credits to send back to the sender at the end of this turn.
    to_grant: u32,
}

/// Receiver side of an input gate: exclusive buffers per channel and a floating pool.
#[derive(Debug)]
pub struct GateCredits {
    floating_free: u32,
    channels: Vec<ChannelBuffers>,
    queued_frames: u32,
    queued_frames_peak: u32,
}

impl GateCredits {
    /// A gate of `channels` channels, each with `exclusive` buffers, sharing `floating` more.
    pub fn new(channels: usize, exclusive: u32, floating: u32) -> Self {
        assert!(exclusive >= 1, "a channel needs at least one exclusive buffer to make progress");
        GateCredits {
            floating_free: floating,
            channels: vec![ChannelBuffers { exclusive, assigned: exclusive, ..Default::default() }; channels],
            queued_frames: 0,
            queued_frames_peak: 0,
        }
    }

    /// Records a frame's arrival on `channel` with the sender's announced backlog, and lends the
    /// channel floating buffers for that backlog if the pool has some.
    pub fn on_frame(&mut self, channel: usize, backlog: u32) {
        let buffers = &mut self.channels[channel];
        buffers.queued += 1;
        buffers.backlog = backlog;
        // The sender broke flow control if it sent without a buffer for the frame.
        assert!(buffers.queued <= buffers.assigned, "channel {channel} sent a frame without credit");
        self.queued_frames += 1;
        self.queued_frames_peak = self.queued_frames_peak.max(self.queued_frames);
        self.lend_floating(channel);
    }

    /// Records that a frame of `channel` was consumed: its buffer goes back to the channel as a
    /// credit, or, if it was a floating buffer no longer needed, back to the pool.
    pub fn on_consumed(&mut self, channel: usize) {
        let buffers = &mut self.channels[channel];
        let exclusive = buffers.exclusive;
        assert!(buffers.queued > 0, "channel {channel} consumed more frames than it received");
        buffers.queued -= 1;
        self.queued_frames -= 1;
        let needed = buffers.queued + buffers.backlog;
        if buffers.assigned > exclusive && buffers.assigned > needed {
            buffers.assigned -= 1;
            self.floating_free += 1;
            self.lend_floating_to_any();
        } else {
            buffers.to_grant += 1;
        }
    }

    fn lend_floating(&mut self, channel: usize) {
        let buffers = &mut self.channels[channel];
        // The sender holds `assigned - queued` credits (fewer if frames are in flight); it needs
        // `backlog` to send what it has queued.
        let wanted = (buffers.queued + buffers.backlog).saturating_sub(buffers.assigned);
        let lent = wanted.min(self.floating_free);
        buffers.assigned += lent;
        buffers.to_grant += lent;
        self.floating_free -= lent;
    }

    fn lend_floating_to_any(&mut self) {
        for channel in 0..self.channels.len() {
            if self.floating_free == 0 {
                break;
            }
            self.lend_floating(channel);
        }
    }

    /// Whether `channel` has a buffer for one more frame (a sender that sends without one breaks
    /// flow control).
    pub fn has_room(&self, channel: usize) -> bool {
        self.channels.get(channel).is_some_and(|buffers| buffers.queued < buffers.assigned)
    }

    /// Reserves `extra` more exclusive buffers for `channel` (a channel from another process,
    /// whose credits take a network round trip to come back, needs more in flight to keep its
    /// sender busy); they are granted to the sender with the next grants.
    pub fn add_exclusive(&mut self, channel: usize, extra: u32) {
        let buffers = &mut self.channels[channel];
        buffers.exclusive += extra;
        buffers.assigned += extra;
        buffers.to_grant += extra;
    }

    /// Credits to send back now, per channel; resets them.
    pub fn take_grants(&mut self) -> impl Iterator<Item = (usize, u32)> + '_ {
        self.channels.iter_mut().enumerate().filter(|(_, b)| b.to_grant > 0).map(|(channel, b)| (channel, std::mem::take(&mut b.to_grant)))
    }

    /// Most frames queued at the gate at once.
    pub fn queued_frames_peak(&self) -> u32 {
        self.queued_frames_peak
    }

    /// The most frames the gate can ever hold.
    pub fn capacity(&self) -> u32 {
        self.channels.iter().map(|b| b.exclusive).sum::<u32>()
            + self.floating_free
            + self.channels.iter().map(|b| b.assigned - b.exclusive).sum::<u32>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame() -> ChannelEvent {
        ChannelEvent::Frame(AnyFrame::new(vec![0u8]))
    }

    #[test]
    fn room_is_the_buffers_a_channel_holds_and_an_unknown_channel_has_none() {
        let mut gate = GateCredits::new(1, 2, 0);
        assert!(gate.has_room(0));
        gate.on_frame(0, 0);
        gate.on_frame(0, 0);
        assert!(!gate.has_room(0), "a third frame would be sent without credit");
        assert!(!gate.has_room(1));
    }

    #[test]
    fn extra_exclusive_buffers_are_granted_and_kept_by_their_channel() {
        let mut gate = GateCredits::new(2, 2, 4);
        gate.add_exclusive(1, 6);
        assert_eq!(gate.take_grants().collect::<Vec<_>>(), [(1, 6)]);
        assert_eq!(gate.capacity(), 2 + 8 + 4);
        // Its eight frames in, all consumed: each buffer goes back to it as a credit.
        for _ in 0..8 {
            gate.on_frame(1, 0);
        }
        for _ in 0..8 {
            gate.on_consumed(1);
        }
        assert_eq!(gate.take_grants().collect::<Vec<_>>(), [(1, 8)]);
    }

    /// Drives one sender and one gate channel against each other: the sender produces as fast as it
    /// can, the receiver consumes one frame every `consume_every` steps.
    fn run(exclusive: u32, floating: u32, frames: usize, consume_every: usize) -> (u32, u32) {
        let mut sender = CreditSender::new(exclusive);
        let mut gate = GateCredits::new(1, exclusive, floating);
        let capacity = gate.capacity();
        let (mut produced, mut received, mut consumed, mut queue) = (0, 0, 0, 0u32);
        let mut step = 0;
        while consumed < frames {
            step += 1;
            // A producer that is not blocked produces one more frame.
            if produced < frames && !sender.is_blocked() {
                sender.enqueue(frame());
                produced += 1;
            }
            while let Some((_event, backlog)) = sender.next_sendable() {
                gate.on_frame(0, backlog);
                received += 1;
                queue += 1;
                assert!(queue <= capacity, "gate holds more frames than its buffers");
            }
            if step % consume_every == 0 && queue > 0 {
                gate.on_consumed(0);
                queue -= 1;
                consumed += 1;
            }
            for (_, credits) in gate.take_grants() {
                sender.add_credits(credits);
            }
        }
        assert_eq!(received, frames);
        (gate.queued_frames_peak(), sender.backlog_frames_peak())
    }

    #[test]
    fn slow_receiver_bounds_queued_frames_by_buffers() {
        let (gate_peak, sender_peak) = run(2, 8, 500, 7);
        assert!(gate_peak <= 2 + 8, "gate peak {gate_peak}");
        // The producer stops as soon as one frame waits, so its backlog stays at one frame.
        assert_eq!(sender_peak, 1);
    }

    #[test]
    fn floating_buffers_are_lent_on_backlog_and_returned() {
        let mut sender = CreditSender::new(1);
        let mut gate = GateCredits::new(2, 1, 4);
        for _ in 0..3 {
            sender.enqueue(frame());
        }
        let (_, backlog) = sender.next_sendable().unwrap();
        assert_eq!(backlog, 2);
        gate.on_frame(0, backlog);
        let grants: Vec<_> = gate.take_grants().collect();
        assert_eq!(grants, vec![(0, 2)], "two floating buffers lent for a backlog of two");
        for (_, c) in grants {
            sender.add_credits(c);
        }
        for _ in 0..2 {
            let (_, backlog) = sender.next_sendable().unwrap();
            gate.on_frame(0, backlog);
        }
        for _ in 0..3 {
            gate.on_consumed(0);
        }
        // Only the exclusive buffer comes back as a credit; the floating ones go back to the pool.
        assert_eq!(gate.take_grants().collect::<Vec<_>>(), vec![(0, 1)]);
        assert_eq!(gate.capacity(), 2 + 4);
    }

    #[test]
    fn end_of_input_waits_behind_frames_but_needs_no_credit() {
        let mut sender = CreditSender::new(0);
        sender.enqueue(frame());
        sender.enqueue(ChannelEvent::EndOfInput);
        assert!(sender.next_sendable().is_none());
        sender.add_credits(1);
        assert!(matches!(sender.next_sendable(), Some((ChannelEvent::Frame(_), 0))));
        assert!(matches!(sender.next_sendable(), Some((ChannelEvent::EndOfInput, 0))));
        assert!(!sender.is_blocked());
    }

    #[test]
    #[should_panic(expected = "without credit")]
    fn a_frame_beyond_the_assigned_buffers_is_a_flow_control_bug() {
        let mut gate = GateCredits::new(1, 1, 0);
        gate.on_frame(0, 0);
        gate.on_frame(0, 0);
    }
}
