//! The Nexmark event generator: persons, auctions and bids of an online auction, synthesized as the
//! nexmark project's generator for Flink (and Apache Beam's, of the same design) does it.
//!
//! Event number `n` (from 0) is a person, an auction or a bid by `n % 50` under the default
//! proportions 1:3:46; its ids, foreign keys and timestamp follow from `n` by the Java generator's
//! arithmetic, and its random fields from a generator seeded by `(seed, n)` alone. So the stream is
//! a function of the seed: subtask `i` of `p` generates `i, i+p, ...`, and the union over subtasks
//! is the same at any parallelism. It is the Java generator run as one generator
//! (`numEventGenerators = 1`, Beam's event ids from 0); Flink's split into per-subtask timelines and
//! id ranges would make the stream depend on the parallelism. Draws use `fastrand`: the Java
//! distributions, not Java's numbers (Flink's generator is unseeded anyway).
//!
//! Records are `Copy` and own no heap memory: strings are `InlineStr`s sized to the longest the
//! generator makes, and the `extra` padding (up to about 540 bytes for an auction) is an
//! [`ExtraStr`], a view into one shared pool of letters, as Flink's generator cuts it from one string.

use std::fmt;
use std::hash::{Hash, Hasher};

use serde::{Deserialize, Serialize, Serializer};

use super::{ReaderStatus, Source, SourceReader};
use crate::base::{SubtaskContext, UserError};
use crate::record::InlineStr;

/// Id of the first person (nexmark `GeneratorConfig.FIRST_PERSON_ID`).
pub const FIRST_PERSON_ID: i64 = 1000;
/// Id of the first auction (nexmark `GeneratorConfig.FIRST_AUCTION_ID`).
pub const FIRST_AUCTION_ID: i64 = 1000;
/// Id of the first of the 5 categories (nexmark `GeneratorConfig.FIRST_CATEGORY_ID`).
pub const FIRST_CATEGORY_ID: i64 = 10;
/// Event time of event 0: 2015-07-15T00:00:00Z, Beam's `NexmarkUtils.BASE_TIME`. Flink's source
/// takes the wall clock at job start instead; a fixed base keeps runs repeatable.
pub const NEXMARK_BASE_TIME_MS: i64 = 1_436_918_400_000;
/// Out-of-orderness bound of the nexmark Flink DDL's watermark: `dateTime - INTERVAL '4' SECOND`.
pub const NEXMARK_WATERMARK_DELAY_MS: i64 = 4000;
/// Largest average event size a config may ask for: the `extra` padding of an event must stay
/// under half the shared pool (where Flink's generator stops cutting from its reusable string).
pub const AVG_EVENT_BYTES_MAX: u32 = 16_384;

/// Ids past the last generated person or auction that a new reference may name, so that a bid or
/// auction sometimes arrives before the person or auction it names (`PERSON_ID_LEAD`).
const PERSON_ID_LEAD: i64 = 10;
/// As [`PERSON_ID_LEAD`] for auctions (`AUCTION_ID_LEAD`).
const AUCTION_ID_LEAD: i64 = 10;
/// Hot sellers, bidders and auctions are the first of each batch of this many ids
/// (`HOT_SELLER_RATIO`, `HOT_BIDDER_RATIO`, `HOT_AUCTION_RATIO`, all 100 and not configurable).
const HOT_ID_BATCH: i64 = 100;
/// Categories are `FIRST_CATEGORY_ID..FIRST_CATEGORY_ID + NUM_CATEGORIES`.
const NUM_CATEGORIES: u32 = 5;
/// Number of non-hot channels, `channel-0..channel-9999`.
const CHANNELS: u32 = 10_000;
/// Half of all bids come from one of the hot channels (`HOT_CHANNELS_RATIO = 2`).
const HOT_CHANNELS_RATIO: u32 = 2;
const HOT_CHANNELS: [&str; 4] = ["Google", "Facebook", "Baidu", "Apple"];
/// Shortest random string before trimming (`MIN_STRING_LENGTH`).
const STRING_LEN_MIN: usize = 3;

// The generator's word lists: few states and cities so that queries find matches on small inputs.
const US_STATES: [&str; 6] = ["AZ", "CA", "ID", "OR", "WA", "WY"];
const US_CITIES: [&str; 10] =
    ["Phoenix", "Los Angeles", "San Francisco", "Boise", "Portland", "Bend", "Redmond", "Seattle", "Kent", "Cheyenne"];
const FIRST_NAMES: [&str; 11] = ["Peter", "Paul", "Luke", "John", "Saul", "Vicky", "Kate", "Julie", "Sarah", "Deiter", "Walter"];
const LAST_NAMES: [&str; 9] = ["Shultz", "Abrams", "Spencer", "White", "Bartels", "Walton", "Smith", "Jones", "Noris"];

// Inline capacities: each is at least the longest string the generator makes (checked by the tests).
/// Capacity of [`Person::name`]: a first and a last name from the lists, at most 6 + 1 + 7 bytes.
pub const NAME_BYTES: usize = 16;
/// Capacity of [`Person::email_address`]: at most 6 + 1 + 4 + 4 bytes.
pub const EMAIL_BYTES: usize = 16;
/// Capacity of [`Person::credit_card`]: always `dddd dddd dddd dddd`.
pub const CREDIT_CARD_BYTES: usize = 19;
/// Capacity of [`Person::city`]: the longest city, `San Francisco`, has 13 bytes.
pub const CITY_BYTES: usize = 16;
/// Capacity of [`Person::state`]: a two-letter code.
pub const STATE_BYTES: usize = 2;
/// Capacity of [`Auction::item_name`]: random text of at most 19 bytes.
pub const ITEM_NAME_BYTES: usize = 20;
/// Capacity of [`Auction::description`]: random text of at most 99 bytes.
pub const DESCRIPTION_BYTES: usize = 100;
/// Capacity of [`NexmarkBid::channel`]: at most `channel-9999`, 12 bytes.
pub const CHANNEL_BYTES: usize = 16;
/// Capacity of [`NexmarkBid::url`]: a base URL of at most 24 + 3 * (4 + 1) + 16 = 55 bytes, then
/// `&channel_id=` and an `i32` of up to 11 bytes: 78.
pub const URL_BYTES: usize = 80;

/// A person registering with the auction site.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct Person {
    /// Person id: `1000, 1001, ...` in event order.
    pub id: i64,
    /// First and last name from the generator's lists.
    pub name: InlineStr<NAME_BYTES>,
    /// `<3..6 letters>@<3..4 letters>.com`, random parts trimmed of spaces.
    pub email_address: InlineStr<EMAIL_BYTES>,
    /// Four groups of four digits separated by spaces.
    pub credit_card: InlineStr<CREDIT_CARD_BYTES>,
    /// One of 10 US cities.
    pub city: InlineStr<CITY_BYTES>,
    /// One of 6 US states.
    pub state: InlineStr<STATE_BYTES>,
    /// Event time in milliseconds since the epoch.
    pub date_time: i64,
    /// Padding that brings the event to `avg_person_bytes` on average.
    pub extra: ExtraStr,
}

/// An item put up for auction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct Auction {
    /// Auction id: `1000, 1001, ...` in event order.
    pub id: i64,
    /// 3..19 random letters and spaces, trimmed.
    pub item_name: InlineStr<ITEM_NAME_BYTES>,
    /// 3..99 random letters and spaces, trimmed.
    pub description: InlineStr<DESCRIPTION_BYTES>,
    /// Opening price, log-uniform in `[100, 10^8]`.
    pub initial_bid: i64,
    /// `initial_bid` plus another such price.
    pub reserve: i64,
    /// Event time in milliseconds since the epoch.
    pub date_time: i64,
    /// End of the auction in milliseconds since the epoch, after `date_time`.
    pub expires: i64,
    /// Person id of the seller.
    pub seller: i64,
    /// Category id, `10..=14`.
    pub category: i64,
    /// Padding that brings the event to `avg_auction_bytes` on average.
    pub extra: ExtraStr,
}

/// A bid on an auction (named so it does not clash with the bids workload's `Bid`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct NexmarkBid {
    /// Auction id bid on.
    pub auction: i64,
    /// Person id of the bidder.
    pub bidder: i64,
    /// Price, log-uniform in `[100, 10^8]`.
    pub price: i64,
    /// A hot channel (`Google`, `Facebook`, `Baidu`, `Apple`) or `channel-<0..9999>`.
    pub channel: InlineStr<CHANNEL_BYTES>,
    /// `https://www.nexmark.com/<a>/<b>/<c>/item.htm?query=1`, fixed per channel, for most
    /// non-hot channels followed by `&channel_id=<bit-reversed channel number>`.
    pub url: InlineStr<URL_BYTES>,
    /// Event time in milliseconds since the epoch.
    pub date_time: i64,
    /// Padding that brings the event to `avg_bid_bytes` on average.
    pub extra: ExtraStr,
}

/// One Nexmark event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub enum NexmarkEvent {
    /// A new person.
    Person(Person),
    /// A new auction.
    Auction(Auction),
    /// A bid.
    Bid(NexmarkBid),
}

impl NexmarkEvent {
    /// Event time in milliseconds since the epoch.
    pub fn date_time(&self) -> i64 {
        match self {
            NexmarkEvent::Person(person) => person.date_time,
            NexmarkEvent::Auction(auction) => auction.date_time,
            NexmarkEvent::Bid(bid) => bid.date_time,
        }
    }
}

/// Bytes in the pool that every `extra` field is cut from.
const EXTRA_POOL_BYTES: usize = 1 << 16;
const EXTRA_POOL_ASCII: [u8; EXTRA_POOL_BYTES] = letter_pool();
/// The shared padding text: lowercase letters, made at compile time, the same in every process.
static EXTRA_POOL: &str = match std::str::from_utf8(&EXTRA_POOL_ASCII) {
    Ok(text) => text,
    Err(_) => panic!("the extra pool is ASCII"),
};

/// Random lowercase letters from a splitmix64 sequence with a fixed seed.
const fn letter_pool() -> [u8; EXTRA_POOL_BYTES] {
    let mut out = [0u8; EXTRA_POOL_BYTES];
    let mut state: u64 = 0x6e65_786d_6172_6b21;
    let mut i = 0;
    while i < EXTRA_POOL_BYTES {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let word = finalize(state);
        out[i] = b'a' + (((word >> 32) * 26) >> 32) as u8;
        i += 1;
    }
    out
}

/// The `extra` padding of an event: a slice of a shared pool of letters, so a record carries 8
/// bytes for it instead of up to ~540 inline or a heap string. Invariant: `offset + len` is within
/// the pool; only the generator makes non-empty values. Equality and hashing compare the text.
#[derive(Clone, Copy, Default, rkyv::Archive, rkyv::Serialize)]
#[rkyv(archived = ArchivedExtraStr)]
pub struct ExtraStr {
    offset: u32,
    len: u16,
}

/// Decoding checks the invariant: the slice lies within the pool.
impl<D> rkyv::Deserialize<ExtraStr, D> for ArchivedExtraStr
where
    D: rkyv::rancor::Fallible + ?Sized,
    D::Error: rkyv::rancor::Source,
{
    fn deserialize(&self, _: &mut D) -> Result<ExtraStr, D::Error> {
        let (offset, len) = (self.offset.to_native(), self.len.to_native());
        if offset as usize + len as usize > EXTRA_POOL.len() {
            return Err(<D::Error as rkyv::rancor::Source>::new(ExtraOutOfPool { offset, len }));
        }
        Ok(ExtraStr { offset, len })
    }
}

/// An encoded `ExtraStr` points outside the pool.
#[derive(Debug, thiserror::Error)]
#[error("extra padding at {offset} of length {len} lies outside the pool")]
struct ExtraOutOfPool {
    offset: u32,
    len: u16,
}

impl ExtraStr {
    /// The padding text.
    pub fn as_str(&self) -> &'static str {
        let start = self.offset as usize;
        let bytes = &EXTRA_POOL.as_bytes()[start..start + self.len as usize];
        // SAFETY: the pool is ASCII (checked when it is made, at compile time), so every range of
        // it is UTF-8. Slicing the `str` instead would check that both ends are character
        // boundaries, reading the pool's bytes: a cache miss per event where the text itself is
        // never read (an SQL scan borrows it).
        unsafe { std::str::from_utf8_unchecked(bytes) }
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether the padding is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl PartialEq for ExtraStr {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for ExtraStr {}

impl Hash for ExtraStr {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl fmt::Debug for ExtraStr {
    // The text is random letters; its length is what a reader of a test failure needs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ExtraStr({} bytes)", self.len)
    }
}

impl fmt::Display for ExtraStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ExtraStr {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// Settings of the generator; [`Default`] gives the nexmark defaults (`NexmarkConfiguration`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NexmarkConfig {
    /// Persons per `person + auction + bid` events; default 1.
    pub person_proportion: u32,
    /// Auctions per `person + auction + bid` events; default 3.
    pub auction_proportion: u32,
    /// Bids per `person + auction + bid` events; default 46.
    pub bid_proportion: u32,
    /// Event-time rate over all subtasks: event `n` happens at `base_time_ms + n * 1000 / rate`
    /// (an inter-event delay of 100 µs at the default 10,000). Paces event time, not emission:
    /// the source runs at full speed, as Flink's does by default (`maxEmitSpeed`).
    pub first_event_rate_per_second: u64,
    /// Event time of event 0; default [`NEXMARK_BASE_TIME_MS`].
    pub base_time_ms: i64,
    /// Average size of a person event with its padding; default 200.
    pub avg_person_bytes: u32,
    /// Average size of an auction event with its padding; default 500.
    pub avg_auction_bytes: u32,
    /// Average size of a bid event with its padding; default 100.
    pub avg_bid_bytes: u32,
    /// A bid is for a hot auction with probability `1 - 1/hot_auction_ratio`; default 2.
    pub hot_auction_ratio: u32,
    /// An auction is by a hot seller with probability `1 - 1/hot_sellers_ratio`; default 4.
    pub hot_sellers_ratio: u32,
    /// A bid is by a hot bidder with probability `1 - 1/hot_bidders_ratio`; default 4.
    pub hot_bidders_ratio: u32,
    /// Other sellers and bidders are drawn from the last this many persons; default 1000.
    pub num_active_people: u32,
    /// Other bids go to the last this many auctions, and auctions last about as long as it takes
    /// to generate this many more; default 100.
    pub num_in_flight_auctions: u32,
}

impl Default for NexmarkConfig {
    fn default() -> Self {
        NexmarkConfig {
            person_proportion: 1,
            auction_proportion: 3,
            bid_proportion: 46,
            first_event_rate_per_second: 10_000,
            base_time_ms: NEXMARK_BASE_TIME_MS,
            avg_person_bytes: 200,
            avg_auction_bytes: 500,
            avg_bid_bytes: 100,
            hot_auction_ratio: 2,
            hot_sellers_ratio: 4,
            hot_bidders_ratio: 4,
            num_active_people: 1000,
            num_in_flight_auctions: 100,
        }
    }
}

/// A generator setting that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NexmarkConfigError {
    /// A setting that must be at least 1 is 0.
    #[error("nexmark config: {field} must be at least 1")]
    Zero {
        /// The setting.
        field: &'static str,
    },
    /// An average event size is larger than the padding pool allows.
    #[error("nexmark config: {field} of {bytes} bytes exceeds the maximum of {max}")]
    AvgBytesTooLarge {
        /// The setting.
        field: &'static str,
        /// The size asked for.
        bytes: u32,
        /// The largest allowed, [`AVG_EVENT_BYTES_MAX`].
        max: u32,
    },
}

impl NexmarkConfig {
    /// Checks that the generator can run with these settings.
    pub fn validate(&self) -> Result<(), NexmarkConfigError> {
        // The id arithmetic looks back to the last person and auction of a 50-event epoch, and the
        // hot-ratio draws are `0..ratio`: each needs at least 1.
        let at_least_one = [
            ("person_proportion", self.person_proportion as u64),
            ("auction_proportion", self.auction_proportion as u64),
            ("first_event_rate_per_second", self.first_event_rate_per_second),
            ("hot_auction_ratio", self.hot_auction_ratio as u64),
            ("hot_sellers_ratio", self.hot_sellers_ratio as u64),
            ("hot_bidders_ratio", self.hot_bidders_ratio as u64),
        ];
        if let Some((field, _)) = at_least_one.iter().find(|(_, value)| *value == 0) {
            return Err(NexmarkConfigError::Zero { field });
        }
        let sizes = [
            ("avg_person_bytes", self.avg_person_bytes),
            ("avg_auction_bytes", self.avg_auction_bytes),
            ("avg_bid_bytes", self.avg_bid_bytes),
        ];
        if let Some(&(field, bytes)) = sizes.iter().find(|(_, bytes)| *bytes > AVG_EVENT_BYTES_MAX) {
            return Err(NexmarkConfigError::AvgBytesTooLarge { field, bytes, max: AVG_EVENT_BYTES_MAX });
        }
        Ok(())
    }
}

/// Largest event number: ids and timestamps are `i64`, as in the Java generator.
const EVENT_NUMBER_MAX: u64 = i64::MAX as u64;

// Streams of the seed space: events, the URL of each channel, the URLs of the hot channels.
const EVENT_STREAM: u64 = 0;
const CHANNEL_URL_STREAM: u64 = 1;
const HOT_URL_STREAM: u64 = 2;

/// The splitmix64 finalizer: spreads consecutive inputs over the whole `u64` range.
const fn finalize(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Seed of the random generator for item `index` of `stream`.
fn stream_seed(seed: u64, stream: u64, index: u64) -> u64 {
    finalize(seed ^ stream.rotate_left(48) ^ index.wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

/// Generates the event of any event number; cheap to copy into each reader.
#[derive(Debug, Clone)]
pub struct NexmarkGenerator {
    seed: u64,
    config: NexmarkConfig,
    total_proportion: u64,
    hot_channels: [InlineStr<CHANNEL_BYTES>; 4],
    hot_urls: [InlineStr<URL_BYTES>; 4],
}

impl NexmarkGenerator {
    /// A generator of the stream of `seed` under `config`.
    pub fn new(seed: u64, config: NexmarkConfig) -> Result<Self, NexmarkConfigError> {
        config.validate()?;
        let total_proportion = config.person_proportion as u64 + config.auction_proportion as u64 + config.bid_proportion as u64;
        let hot_channels = HOT_CHANNELS.map(|name| {
            let mut channel = AsciiBuf::<CHANNEL_BYTES>::new();
            channel.push_str(name);
            channel.finish()
        });
        let hot_urls = std::array::from_fn(|hot| {
            let mut rng = fastrand::Rng::with_seed(stream_seed(seed, HOT_URL_STREAM, hot as u64));
            base_url(&mut rng).finish()
        });
        Ok(NexmarkGenerator { seed, config, total_proportion, hot_channels, hot_urls })
    }

    /// The settings.
    pub fn config(&self) -> &NexmarkConfig {
        &self.config
    }

    /// Event time of event `number`: `base_time_ms + floor(number * 1000 / rate)`.
    pub fn timestamp_ms(&self, number: u64) -> i64 {
        let rate = self.config.first_event_rate_per_second;
        let offset_ms = match number.checked_mul(1000) {
            Some(scaled) => scaled / rate,
            None => (number as u128 * 1000 / rate as u128) as u64,
        };
        self.config.base_time_ms.saturating_add(offset_ms.min(EVENT_NUMBER_MAX) as i64)
    }

    /// The event with number `number` (from 0, below 2^63).
    #[inline]
    pub fn event(&self, number: u64) -> NexmarkEvent {
        debug_assert!(number <= EVENT_NUMBER_MAX, "event number {number} past the i64 id space");
        let date_time = self.timestamp_ms(number);
        let mut rng = fastrand::Rng::with_seed(stream_seed(self.seed, EVENT_STREAM, number));
        let n = number as i64;
        let rem = number % self.total_proportion;
        let persons = self.config.person_proportion as u64;
        if rem < persons {
            NexmarkEvent::Person(self.person(n, &mut rng, date_time))
        } else if rem < persons + self.config.auction_proportion as u64 {
            NexmarkEvent::Auction(self.auction(n, &mut rng, date_time))
        } else {
            NexmarkEvent::Bid(self.bid(n, &mut rng, date_time))
        }
    }

    /// Base-0 id of the last person generated up to event `n`: `n`'s own if `n` is a person.
    fn last_base0_person_id(&self, n: i64) -> i64 {
        let total = self.total_proportion as i64;
        let persons = self.config.person_proportion as i64;
        let epoch = n / total;
        let offset = (n % total).min(persons - 1);
        epoch * persons + offset
    }

    /// Base-0 id of the last auction generated up to event `n`: `n`'s own if `n` is an auction;
    /// -1 before the first auction.
    fn last_base0_auction_id(&self, n: i64) -> i64 {
        let total = self.total_proportion as i64;
        let persons = self.config.person_proportion as i64;
        let auctions = self.config.auction_proportion as i64;
        let mut epoch = n / total;
        let mut offset = n % total;
        if offset < persons {
            // A person: the last auction is the last of the previous epoch.
            epoch -= 1;
            offset = auctions - 1;
        } else if offset >= persons + auctions {
            // A bid: the last auction is the last of this epoch.
            offset = auctions - 1;
        } else {
            offset -= persons;
        }
        epoch * auctions + offset
    }

    /// A random base-0 person id among the active people, or up to `PERSON_ID_LEAD` ahead of the
    /// last one (a reference that arrives before its person). Bounding to the active people keeps
    /// the density of bids and auctions per person constant over a long run.
    fn next_base0_person_id(&self, n: i64, rng: &mut fastrand::Rng) -> i64 {
        let people = self.last_base0_person_id(n) + 1;
        let active = people.min(self.config.num_active_people as i64);
        people - active + rng.i64(0..active + PERSON_ID_LEAD)
    }

    /// A random base-0 auction id among those likely still in flight, or up to `AUCTION_ID_LEAD`
    /// ahead of the last one.
    fn next_base0_auction_id(&self, n: i64, rng: &mut fastrand::Rng) -> i64 {
        let last = self.last_base0_auction_id(n);
        let first = (last - self.config.num_in_flight_auctions as i64).max(0);
        first + rng.i64(0..last - first + 1 + AUCTION_ID_LEAD)
    }

    fn person(&self, n: i64, rng: &mut fastrand::Rng, date_time: i64) -> Person {
        let id = self.last_base0_person_id(n) + FIRST_PERSON_ID;
        let mut name = AsciiBuf::<NAME_BYTES>::new();
        name.push_str(FIRST_NAMES[rng.usize(..FIRST_NAMES.len())]);
        name.push(b' ');
        name.push_str(LAST_NAMES[rng.usize(..LAST_NAMES.len())]);
        let mut email = AsciiBuf::<EMAIL_BYTES>::new();
        email.push_str(random_text::<7>(rng, b' ').as_str());
        email.push(b'@');
        email.push_str(random_text::<5>(rng, b' ').as_str());
        email.push_str(".com");
        let mut credit_card = AsciiBuf::<CREDIT_CARD_BYTES>::new();
        for group in 0..4 {
            if group > 0 {
                credit_card.push(b' ');
            }
            credit_card.push_four_digits(rng.u32(..10_000));
        }
        let mut city = AsciiBuf::<CITY_BYTES>::new();
        city.push_str(US_CITIES[rng.usize(..US_CITIES.len())]);
        let mut state = AsciiBuf::<STATE_BYTES>::new();
        state.push_str(US_STATES[rng.usize(..US_STATES.len())]);
        let size = 8 + name.len + email.len + credit_card.len + city.len + state.len;
        let extra = next_extra(rng, size, self.config.avg_person_bytes);
        Person {
            id,
            name: name.finish(),
            email_address: email.finish(),
            credit_card: credit_card.finish(),
            city: city.finish(),
            state: state.finish(),
            date_time,
            extra,
        }
    }

    fn auction(&self, n: i64, rng: &mut fastrand::Rng, date_time: i64) -> Auction {
        let id = self.last_base0_auction_id(n) + FIRST_AUCTION_ID;
        let seller = if rng.u32(..self.config.hot_sellers_ratio) > 0 {
            // The first person of the batch of the last `HOT_ID_BATCH` people.
            (self.last_base0_person_id(n) / HOT_ID_BATCH) * HOT_ID_BATCH
        } else {
            self.next_base0_person_id(n, rng)
        } + FIRST_PERSON_ID;
        let category = FIRST_CATEGORY_ID + rng.u32(..NUM_CATEGORIES) as i64;
        let initial_bid = next_price(rng);
        let expires = date_time + self.auction_length_ms(n, rng, date_time);
        let item_name = random_text::<ITEM_NAME_BYTES>(rng, b' ');
        let description = random_text::<DESCRIPTION_BYTES>(rng, b' ');
        let reserve = initial_bid + next_price(rng);
        let size = 8 + item_name.len + description.len + 8 + 8 + 8 + 8 + 8;
        let extra = next_extra(rng, size, self.config.avg_auction_bytes);
        Auction {
            id,
            item_name: item_name.finish(),
            description: description.finish(),
            initial_bid,
            reserve,
            date_time,
            expires,
            seller,
            category,
            extra,
        }
    }

    /// Length of an auction: uniform up to twice the event time it takes to generate
    /// `num_in_flight_auctions` more auctions, so about that many are open at any time.
    fn auction_length_ms(&self, n: i64, rng: &mut fastrand::Rng, date_time: i64) -> i64 {
        let events_for_auctions = self.config.num_in_flight_auctions as u64 * self.total_proportion / self.config.auction_proportion as u64;
        let future_auction = self.timestamp_ms((n as u64).saturating_add(events_for_auctions));
        let horizon_ms = future_auction - date_time;
        1 + rng.i64(0..(horizon_ms * 2).max(1))
    }

    fn bid(&self, n: i64, rng: &mut fastrand::Rng, date_time: i64) -> NexmarkBid {
        let auction = if rng.u32(..self.config.hot_auction_ratio) > 0 {
            // The first auction of the batch of the last `HOT_ID_BATCH` auctions.
            (self.last_base0_auction_id(n) / HOT_ID_BATCH) * HOT_ID_BATCH
        } else {
            self.next_base0_auction_id(n, rng)
        } + FIRST_AUCTION_ID;
        // Flink's BidGenerator adds FIRST_PERSON_ID to the bidder twice, which points bids at people
        // that do not exist yet; Beam's adds it once, as here, so bidders join with persons.
        let bidder = if rng.u32(..self.config.hot_bidders_ratio) > 0 {
            // The second person of the batch, so hot bidders and hot sellers differ.
            (self.last_base0_person_id(n) / HOT_ID_BATCH) * HOT_ID_BATCH + 1
        } else {
            self.next_base0_person_id(n, rng)
        } + FIRST_PERSON_ID;
        let price = next_price(rng);
        let (channel, url) = if rng.u32(..HOT_CHANNELS_RATIO) > 0 {
            let hot = rng.usize(..HOT_CHANNELS.len());
            (self.hot_channels[hot], self.hot_urls[hot])
        } else {
            let number = rng.u32(..CHANNELS);
            (channel_name(number), channel_url(self.seed, number))
        };
        let extra = next_extra(rng, 8 + 8 + 8 + 8, self.config.avg_bid_bytes);
        NexmarkBid { auction, bidder, price, channel, url, date_time, extra }
    }
}

/// A price log-uniform in `[100, 10^8]`: `round(10^(6u) * 100)` for `u` uniform in `[0, 1)`.
#[inline]
fn next_price(rng: &mut fastrand::Rng) -> i64 {
    ((rng.f64() * 6.0 * std::f64::consts::LN_10).exp() * 100.0).round() as i64
}

/// `channel-<number>`.
fn channel_name(number: u32) -> InlineStr<CHANNEL_BYTES> {
    let mut channel = AsciiBuf::<CHANNEL_BYTES>::new();
    channel.push_str("channel-");
    channel.push_i64(number as i64);
    channel.finish()
}

/// The URL of non-hot channel `number`: a function of the seed and the number, as Flink's
/// generator keeps one URL per channel in a table (built per process from an unseeded random).
fn channel_url(seed: u64, number: u32) -> InlineStr<URL_BYTES> {
    let mut rng = fastrand::Rng::with_seed(stream_seed(seed, CHANNEL_URL_STREAM, number as u64));
    let mut url = base_url(&mut rng);
    if rng.u32(..10) > 0 {
        url.push_str("&channel_id=");
        // Java's `Math.abs(Integer.reverse(i))`, which leaves `i32::MIN` negative.
        url.push_i64((number as i32).reverse_bits().wrapping_abs() as i64);
    }
    url.finish()
}

/// `https://www.nexmark.com/<a>/<b>/<c>/item.htm?query=1` with 3..4 random letters or `_` each.
fn base_url(rng: &mut fastrand::Rng) -> AsciiBuf<URL_BYTES> {
    let mut url = AsciiBuf::new();
    url.push_str("https://www.nexmark.com/");
    for _ in 0..3 {
        url.push_str(random_text::<5>(rng, b'_').as_str());
        url.push(b'/');
    }
    url.push_str("item.htm?query=1");
    url
}

/// A random string of `3..MAX_LEN` characters, each `special` with probability 1/13 and otherwise
/// a uniform lowercase letter, trimmed of spaces (`StringsGenerator.nextString`).
fn random_text<const MAX_LEN: usize>(rng: &mut fastrand::Rng, special: u8) -> AsciiBuf<MAX_LEN> {
    let len = STRING_LEN_MIN + rng.usize(..MAX_LEN - STRING_LEN_MIN);
    let mut text = AsciiBuf::new();
    for _ in 0..len {
        // One draw for both choices: 26 of the 338 values are `special`, 12 each letter.
        let k = rng.u32(..13 * 26);
        text.push(if k < 26 { special } else { b'a' + ((k - 26) % 26) as u8 });
    }
    text.trim_spaces();
    text
}

/// Padding such that `current_size` plus its length is `avg_size` on average: uniform within 20% of
/// the difference (`StringsGenerator.nextExtra`), cut from the shared pool at a random offset.
fn next_extra(rng: &mut fastrand::Rng, current_size: usize, avg_size: u32) -> ExtraStr {
    let avg_size = avg_size as usize;
    if current_size > avg_size {
        return ExtraStr::default();
    }
    let desired = avg_size - current_size;
    // round(desired * 0.2) in integers: the fraction is a multiple of 0.2, never a tie.
    let delta = (desired + 2) / 5;
    let len = desired - delta + if delta == 0 { 0 } else { rng.usize(..2 * delta) };
    // `validate` bounds `avg_size`, so `len` is under half the pool and fits a u16.
    debug_assert!(len < EXTRA_POOL_BYTES / 2);
    let offset = rng.usize(..EXTRA_POOL_BYTES - len);
    ExtraStr { offset: offset as u32, len: len as u16 }
}

/// ASCII text built in place; it becomes an `InlineStr<N>` of the same capacity. Pushing past `N`
/// panics: that is a bug in the generator's capacities, not bad input.
struct AsciiBuf<const N: usize> {
    bytes: [u8; N],
    len: usize,
}

impl<const N: usize> AsciiBuf<N> {
    fn new() -> Self {
        AsciiBuf { bytes: [0; N], len: 0 }
    }

    #[inline]
    fn push(&mut self, byte: u8) {
        debug_assert!(byte.is_ascii());
        self.bytes[self.len] = byte;
        self.len += 1;
    }

    fn push_str(&mut self, text: &str) {
        debug_assert!(text.is_ascii());
        self.bytes[self.len..self.len + text.len()].copy_from_slice(text.as_bytes());
        self.len += text.len();
    }

    fn push_i64(&mut self, value: i64) {
        if value < 0 {
            self.push(b'-');
        }
        let mut digits = [0u8; 20];
        let mut start = digits.len();
        let mut rest = value.unsigned_abs();
        loop {
            start -= 1;
            digits[start] = b'0' + (rest % 10) as u8;
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        for &digit in &digits[start..] {
            self.push(digit);
        }
    }

    /// `value` below 10,000 as four digits with leading zeros.
    fn push_four_digits(&mut self, value: u32) {
        debug_assert!(value < 10_000);
        for divisor in [1000, 100, 10, 1] {
            self.push(b'0' + (value / divisor % 10) as u8);
        }
    }

    /// Removes leading and trailing spaces, as Java's `String.trim` does to generated text.
    fn trim_spaces(&mut self) {
        let text = &self.bytes[..self.len];
        let start = text.iter().position(|&b| b != b' ').unwrap_or(self.len);
        let end = text.iter().rposition(|&b| b != b' ').map_or(start, |last| last + 1);
        self.bytes.copy_within(start..end, 0);
        self.len = end - start;
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len]).expect("the generator writes ASCII only")
    }

    fn finish(&self) -> InlineStr<N> {
        InlineStr::from_ascii_slice(&self.bytes[..self.len])
    }
}

/// Settings of the Nexmark source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NexmarkSource {
    /// Total events over all subtasks; `None` generates forever.
    pub events: Option<u64>,
    /// Seed of the generated values.
    pub seed: u64,
    /// Generator settings.
    pub config: NexmarkConfig,
}

impl NexmarkSource {
    /// A source of `events` events under the default settings.
    pub fn new(events: u64, seed: u64) -> Self {
        NexmarkSource { events: Some(events), seed, config: NexmarkConfig::default() }
    }

    /// Replaces the generator settings.
    pub fn with_config(mut self, config: NexmarkConfig) -> Self {
        self.config = config;
        self
    }

    /// The generator of this source's events, or why its settings cannot work.
    pub fn generator(&self) -> Result<NexmarkGenerator, NexmarkConfigError> {
        NexmarkGenerator::new(self.seed, self.config)
    }
}

impl Source<NexmarkEvent> for NexmarkSource {
    fn create_reader(&self, context: &SubtaskContext) -> Result<Box<dyn SourceReader<NexmarkEvent>>, UserError> {
        let generator = self.generator()?;
        let end_number = self.events.unwrap_or(EVENT_NUMBER_MAX).min(EVENT_NUMBER_MAX);
        Ok(Box::new(NexmarkReader {
            generator,
            first_number: context.subtask_index as u64,
            next_number: context.subtask_index as u64,
            stride: context.parallelism.max(1) as u64,
            end_number,
        }))
    }
}

/// Generates event numbers `subtask_index, subtask_index + parallelism, ...` below `end_number`.
struct NexmarkReader {
    generator: NexmarkGenerator,
    first_number: u64,
    next_number: u64,
    stride: u64,
    end_number: u64,
}

impl SourceReader<NexmarkEvent> for NexmarkReader {
    fn poll_frame(&mut self, frame: &mut Vec<NexmarkEvent>, records_max: usize) -> Result<ReaderStatus, UserError> {
        let remaining = if self.next_number >= self.end_number { 0 } else { (self.end_number - self.next_number - 1) / self.stride + 1 };
        let count = remaining.min(records_max as u64);
        let (first, stride) = (self.next_number, self.stride);
        frame.extend((0..count).map(|i| self.generator.event(first + i * stride)));
        self.next_number += count * stride;
        Ok(if count == remaining { ReaderStatus::Finished } else { ReaderStatus::Ready })
    }

    fn watermark(&self) -> Option<i64> {
        // Event time is non-decreasing in the event number, so the last event emitted bounds this
        // subtask; other subtasks are at most one stride behind, well within the DDL's 4 s.
        let last_number = self.next_number.checked_sub(self.stride)?;
        Some(self.generator.timestamp_ms(last_number) - NEXMARK_WATERMARK_DELAY_MS)
    }

    fn position(&self) -> Option<u64> {
        Some(self.next_number)
    }

    fn seek(&mut self, position: u64) -> Result<(), UserError> {
        super::check_strided_position(position, self.first_number, self.stride)?;
        self.next_number = position;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(subtask_index: usize, parallelism: usize) -> SubtaskContext {
        SubtaskContext {
            operator_name: "nexmark".into(),
            subtask_index,
            parallelism,
            max_parallelism: 128,
            frame_records_max: 1024,
            frame_bytes_max: crate::config::FRAME_BYTES_MAX_DEFAULT,
            watermark_interval: std::time::Duration::from_millis(10),
            side_outputs: Vec::new(),
            state_dir: None,
            state_cache_bytes: None,
            output_tap: None,
        }
    }

    /// All events of `source` at `parallelism`, in event-number order.
    fn read_all(source: &NexmarkSource, parallelism: usize) -> Vec<NexmarkEvent> {
        let per_subtask: Vec<Vec<NexmarkEvent>> = (0..parallelism)
            .map(|subtask| {
                let mut events = Vec::new();
                let mut reader = source.create_reader(&context(subtask, parallelism)).unwrap();
                while reader.poll_frame(&mut events, 97).unwrap() != ReaderStatus::Finished {}
                events
            })
            .collect();
        // Subtask `n % p` generated event `n` as its `n / p`-th.
        let total: usize = per_subtask.iter().map(Vec::len).sum();
        (0..total).map(|n| per_subtask[n % parallelism][n / parallelism]).collect()
    }

    #[test]
    fn proportions_are_1_3_46_in_every_50_events() {
        let events = read_all(&NexmarkSource::new(50_000, 1), 1);
        assert_eq!(events.len(), 50_000);
        let mut counts = [0usize; 3];
        for (n, event) in events.iter().enumerate() {
            let kind = match event {
                NexmarkEvent::Person(_) => 0,
                NexmarkEvent::Auction(_) => 1,
                NexmarkEvent::Bid(_) => 2,
            };
            let expected = match n % 50 {
                0 => 0,
                1..=3 => 1,
                _ => 2,
            };
            assert_eq!(kind, expected, "event {n}");
            counts[kind] += 1;
        }
        assert_eq!(counts, [1000, 3000, 46_000]);
    }

    #[test]
    fn person_and_auction_ids_count_up_from_1000() {
        let events = read_all(&NexmarkSource::new(20_000, 2), 1);
        let persons: Vec<i64> = events.iter().filter_map(|e| if let NexmarkEvent::Person(p) = e { Some(p.id) } else { None }).collect();
        let auctions: Vec<i64> = events.iter().filter_map(|e| if let NexmarkEvent::Auction(a) = e { Some(a.id) } else { None }).collect();
        assert_eq!(persons, (FIRST_PERSON_ID..FIRST_PERSON_ID + 400).collect::<Vec<_>>());
        assert_eq!(auctions, (FIRST_AUCTION_ID..FIRST_AUCTION_ID + 1200).collect::<Vec<_>>());
    }

    #[test]
    fn references_name_existing_or_soon_generated_ids() {
        let config = NexmarkConfig::default();
        let events = read_all(&NexmarkSource::new(100_000, 3), 1);
        let (mut last_person, mut last_auction) = (FIRST_PERSON_ID - 1, FIRST_AUCTION_ID - 1);
        let (mut bids, mut bids_on_existing, mut bids_by_existing) = (0, 0, 0);
        // Non-hot references reach back over the active people / in-flight auctions; hot ones to
        // the start of the last batch of 100.
        let person_window = (config.num_active_people as i64).max(HOT_ID_BATCH);
        let auction_window = (config.num_in_flight_auctions as i64).max(HOT_ID_BATCH);
        for event in &events {
            match event {
                NexmarkEvent::Person(person) => last_person = person.id,
                NexmarkEvent::Auction(auction) => {
                    last_auction = auction.id;
                    assert!(auction.seller >= FIRST_PERSON_ID.max(last_person - person_window));
                    assert!(auction.seller <= last_person + PERSON_ID_LEAD, "{auction:?}");
                    assert!((FIRST_CATEGORY_ID..FIRST_CATEGORY_ID + 5).contains(&auction.category));
                    assert!(auction.reserve > auction.initial_bid);
                    assert!(auction.expires > auction.date_time);
                }
                NexmarkEvent::Bid(bid) => {
                    assert!(bid.auction >= FIRST_AUCTION_ID.max(last_auction - auction_window));
                    assert!(bid.auction <= last_auction + AUCTION_ID_LEAD, "{bid:?}");
                    assert!(bid.bidder >= FIRST_PERSON_ID.max(last_person - person_window));
                    assert!(bid.bidder <= last_person + PERSON_ID_LEAD, "{bid:?}");
                    assert!((100..=100_000_000).contains(&bid.price));
                    bids += 1;
                    bids_on_existing += (bid.auction <= last_auction) as usize;
                    bids_by_existing += (bid.bidder <= last_person) as usize;
                }
            }
        }
        // Leads are the exception: most references join with an event already generated (about
        // 1/2 + 1/2 * 101/111 of auctions, 3/4 * 99/100 + 1/4 * 1000/1010 of bidders).
        assert!(bids_on_existing * 100 > bids * 93, "{bids_on_existing} of {bids}");
        assert!(bids_by_existing * 100 > bids * 97, "{bids_by_existing} of {bids}");
    }

    #[test]
    fn event_time_advances_at_the_first_event_rate() {
        let source = NexmarkSource::new(50_000, 4);
        let events = read_all(&source, 1);
        assert_eq!(events[0].date_time(), NEXMARK_BASE_TIME_MS);
        assert_eq!(events[10_000].date_time(), NEXMARK_BASE_TIME_MS + 1000);
        assert!(events.windows(2).all(|pair| pair[0].date_time() <= pair[1].date_time()));
        let generator = source.generator().unwrap();
        assert_eq!(generator.timestamp_ms(u64::MAX / 2), NEXMARK_BASE_TIME_MS + (u64::MAX / 2 / 10) as i64);
    }

    #[test]
    fn watermark_trails_the_last_event_emitted_by_four_seconds() {
        let mut reader = NexmarkSource::new(100_000, 4).create_reader(&context(1, 2)).unwrap();
        assert_eq!(reader.watermark(), None);
        let (mut events, mut previous) = (Vec::new(), i64::MIN);
        while reader.poll_frame(&mut events, 1000).unwrap() != ReaderStatus::Finished {
            let watermark = reader.watermark().unwrap();
            assert_eq!(watermark, events.last().unwrap().date_time() - NEXMARK_WATERMARK_DELAY_MS);
            assert!(watermark >= previous);
            previous = watermark;
        }
    }

    #[test]
    fn same_events_at_any_parallelism() {
        let source = NexmarkSource::new(10_007, 42);
        let one = read_all(&source, 1);
        assert_eq!(one.len(), 10_007);
        assert_eq!(one, read_all(&source, 2));
        assert_eq!(one, read_all(&source, 3));
        assert_ne!(one, read_all(&NexmarkSource::new(10_007, 43), 1));
        let generator = source.generator().unwrap();
        assert_eq!(generator.event(5000), one[5000]);
    }

    #[test]
    fn strings_follow_the_generator_formats_within_capacity() {
        let events = read_all(&NexmarkSource::new(50_000, 5), 1);
        let hot = ["Google", "Facebook", "Baidu", "Apple"];
        let (mut longest_description, mut longest_url, mut numbered_urls) = (0, 0, 0);
        for event in &events {
            match event {
                NexmarkEvent::Person(p) => {
                    let (first, last) = p.name.as_str().split_once(' ').unwrap();
                    assert!(FIRST_NAMES.contains(&first) && LAST_NAMES.contains(&last));
                    let email = p.email_address.as_str();
                    assert!(email.ends_with(".com") && email.contains('@'), "{email}");
                    let card = p.credit_card.as_str();
                    assert_eq!(card.len(), 19);
                    assert!(card.split(' ').all(|g| g.len() == 4 && g.bytes().all(|c| c.is_ascii_digit())));
                    assert!(US_CITIES.contains(&p.city.as_str()));
                    assert!(US_STATES.contains(&p.state.as_str()));
                    // 200 minus 48..=71 bytes of fields, within 20%.
                    assert!((103..=181).contains(&p.extra.len()), "{}", p.extra.len());
                }
                NexmarkEvent::Auction(a) => {
                    assert!(a.item_name.len() < ITEM_NAME_BYTES);
                    assert!(a.description.len() < DESCRIPTION_BYTES);
                    let text = a.description.as_str();
                    assert!(!text.starts_with(' ') && !text.ends_with(' '));
                    assert!(text.bytes().all(|c| c == b' ' || c.is_ascii_lowercase()));
                    longest_description = longest_description.max(a.description.len());
                    assert!(a.extra.as_str().bytes().all(|c| c.is_ascii_lowercase()));
                }
                NexmarkEvent::Bid(b) => {
                    let channel = b.channel.as_str();
                    let url = b.url.as_str();
                    assert!(url.starts_with("https://www.nexmark.com/"), "{url}");
                    assert!(url.contains("/item.htm?query=1"), "{url}");
                    if let Some(number) = channel.strip_prefix("channel-") {
                        assert!(number.parse::<u32>().unwrap() < CHANNELS);
                        numbered_urls += url.contains("&channel_id=") as usize;
                    } else {
                        assert!(hot.contains(&channel), "{channel}");
                        assert!(!url.contains("&channel_id="));
                    }
                    longest_url = longest_url.max(url.len());
                    // 100 - 32 = 68 bytes of padding, within 20%.
                    assert!((54..=81).contains(&b.extra.len()), "{}", b.extra.len());
                }
            }
        }
        assert!(longest_description > 90);
        assert!(longest_url > 60 && longest_url <= URL_BYTES);
        assert!(numbered_urls > 0);
    }

    #[test]
    fn every_channel_has_one_url_within_capacity() {
        // Building a URL past `URL_BYTES` would panic; Java's `Math.abs(Integer.reverse(1))` is
        // `Integer.MIN_VALUE`, the longest channel id.
        let longest = (0..CHANNELS).map(|number| channel_url(9, number).len()).max().unwrap();
        assert!(longest <= URL_BYTES && longest > 70, "{longest}");
        assert_eq!(channel_url(9, 1234), channel_url(9, 1234));
        assert_ne!(channel_url(9, 1234), channel_url(10, 1234));
    }

    #[test]
    fn extra_pads_events_to_their_average_size() {
        let events = read_all(&NexmarkSource::new(50_000, 6), 1);
        let bid_sizes: Vec<usize> =
            events.iter().filter_map(|e| if let NexmarkEvent::Bid(b) = e { Some(32 + b.extra.len()) } else { None }).collect();
        let mean = bid_sizes.iter().sum::<usize>() as f64 / bid_sizes.len() as f64;
        assert!((mean - 100.0).abs() < 1.0, "mean bid size {mean}");
    }

    #[test]
    fn hot_ratios_skew_bids_to_few_auctions_and_bidders() {
        let events = read_all(&NexmarkSource::new(50_000, 7), 1);
        let bids: Vec<&NexmarkBid> = events.iter().filter_map(|e| if let NexmarkEvent::Bid(b) = e { Some(b) } else { None }).collect();
        // P(hot) = 1 - 1/2 for auctions, 1 - 1/4 for bidders; plus the non-hot draws that land on
        // a batch start. Hot auctions are multiples of 100 (base 0), hot bidders 1 past one.
        let hot_auctions = bids.iter().filter(|b| (b.auction - FIRST_AUCTION_ID) % 100 == 0).count();
        let hot_bidders = bids.iter().filter(|b| (b.bidder - FIRST_PERSON_ID) % 100 == 1).count();
        let share = |count: usize| count as f64 / bids.len() as f64;
        assert!((0.48..0.56).contains(&share(hot_auctions)), "{}", share(hot_auctions));
        assert!((0.73..0.80).contains(&share(hot_bidders)), "{}", share(hot_bidders));
    }

    #[test]
    fn unworkable_settings_fail_at_reader_creation() {
        let zero = NexmarkConfig { auction_proportion: 0, ..NexmarkConfig::default() };
        let error = NexmarkSource::new(10, 1).with_config(zero).create_reader(&context(0, 1)).err().unwrap();
        assert_eq!(error.to_string(), "nexmark config: auction_proportion must be at least 1");
        let huge = NexmarkConfig { avg_auction_bytes: AVG_EVENT_BYTES_MAX + 1, ..NexmarkConfig::default() };
        assert!(matches!(huge.validate(), Err(NexmarkConfigError::AvgBytesTooLarge { field: "avg_auction_bytes", .. })));
        assert_eq!(NexmarkConfig::default().validate(), Ok(()));
    }

    #[test]
    fn records_are_copy_and_compact() {
        fn assert_copy<T: Copy>() {}
        assert_copy::<NexmarkEvent>();
        assert!(std::mem::size_of::<NexmarkEvent>() <= 256, "{}", std::mem::size_of::<NexmarkEvent>());
        assert_eq!(std::mem::size_of::<ExtraStr>(), 8);
    }
}
