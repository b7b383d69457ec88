//! A Produce request encoder that never copies record payloads.
//!
//! kafka-protocol's encoder needs one contiguous buffer, so it memcpys every
//! record batch into it. A replicator forwards batches it already holds as
//! [`Bytes`], so this encoder emits the request as a list of chunks instead:
//! the small encoded pieces (size prefix, request header, topic and partition
//! fields, lengths) are written into one [`BytesMut`] and sliced out, and the
//! caller's record chunks are placed between them unchanged (same allocation,
//! same pointer). Write the chunks with vectored I/O, e.g. through
//! [`EncodedRequest::into_buf`] and tokio's `write_all_buf`.
//!
//! Wire format, per `ProduceRequest.json` / `RequestHeader.json`:
//!
//! ```text
//! size:i32
//! header:   api_key:i16 api_version:i16 correlation_id:i32 client_id:nullable string (i16 length, even in v2)
//!           [v9+: tagged fields]
//! body:     transactional_id:nullable string acks:i16 timeout_ms:i32
//!           [topic: name:string (v3-12) | topic_id:uuid (v13)
//!                   [partition: index:i32 records:nullable bytes [v9+: tagged fields]]
//!                   [v9+: tagged fields]]
//!           [v9+: tagged fields]
//! ```
//!
//! Versions 9+ are "flexible": strings, arrays and bytes use compact
//! (unsigned-varint, length + 1) prefixes and every struct ends with a tagged
//! field section, which this encoder always writes empty.

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::frame::SIZE_PREFIX_LEN;
use crate::varint::put_unsigned_varint;
use crate::{Result, WireError};

/// API key of Produce.
pub const PRODUCE_API_KEY: i16 = 0;
/// Oldest Produce version encoded here (transactional id, RecordBatch v2; KIP-896 baseline).
pub const MIN_PRODUCE_VERSION: i16 = 3;
/// Newest Produce version encoded here (Kafka 4.1, topic ids).
pub const MAX_PRODUCE_VERSION: i16 = 13;
/// First flexible Produce version: compact encodings, tagged fields, request header v2.
pub const FIRST_FLEXIBLE_VERSION: i16 = 9;
/// First Produce version that names topics by id instead of by name.
pub const FIRST_TOPIC_ID_VERSION: i16 = 13;

/// Longest string Kafka accepts: an `i16` length, also enforced for compact strings.
const MAX_STRING_LEN: i16 = i16::MAX;

/// How a topic is identified: by name for v3-12, by topic id for v13.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TopicRef<'a> {
    /// The topic name (Produce v3-12).
    Name(&'a str),
    /// The topic id, a UUID in network byte order (Produce v13+).
    Id([u8; 16]),
}

/// One partition's `records` field.
///
/// The field is the concatenation of `records`, e.g. a rewritten 61-byte batch
/// header followed by the original payload slice. Brokers accept exactly one
/// record batch per partition entry, but this encoder does not parse the
/// bytes: that rule is the caller's. Empty chunks are allowed and skipped; an
/// empty list encodes an empty (not null) records field.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PartitionRecords {
    /// Partition index.
    pub partition: i32,
    /// The chunks whose concatenation is the partition's records.
    pub records: Vec<Bytes>,
}

/// One topic of a Produce request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicRecords<'a> {
    /// The topic, by name (v3-12) or id (v13).
    pub topic: TopicRef<'a>,
    /// Its partitions, in the order they are encoded.
    pub partitions: Vec<PartitionRecords>,
}

/// The non-record fields of a Produce request and its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProduceRequestParams<'a> {
    /// Produce API version, [`MIN_PRODUCE_VERSION`]`..=`[`MAX_PRODUCE_VERSION`].
    pub version: i16,
    /// Correlation id echoed by the broker in the response.
    pub correlation_id: i32,
    /// Client id for the request header (`None` encodes a null string).
    pub client_id: Option<&'a str>,
    /// Transactional id, `None` unless producing inside a transaction.
    pub transactional_id: Option<&'a str>,
    /// Required acks: -1 (all ISR), 1 (leader) or 0 (no response at all).
    pub acks: i16,
    /// How long the broker may wait for the acks, in milliseconds.
    pub timeout_ms: i32,
}

/// An encoded request: chunks to be written back to back.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EncodedRequest {
    /// The request, size prefix included. Encoder-owned pieces alternate with
    /// the caller's record chunks; no chunk is empty.
    pub chunks: Vec<Bytes>,
    /// Total bytes over all chunks, including the 4-byte size prefix.
    pub len: usize,
}

impl EncodedRequest {
    /// A [`Buf`] over the chunks whose `chunks_vectored` exposes all of them,
    /// so `write_all_buf` on a vectored writer (e.g. a plaintext `TcpStream`)
    /// sends them without copying, as many chunks per syscall as it allows.
    pub fn into_buf(self) -> ChunkedBuf {
        // Recomputed rather than trusting `len`: the fields are public.
        let mut chunks = VecDeque::from(self.chunks);
        chunks.retain(|c| !c.is_empty());
        ChunkedBuf {
            remaining: chunks.iter().map(Bytes::len).sum(),
            chunks,
        }
    }
}

/// A [`Buf`] over a sequence of [`Bytes`] chunks (see
/// [`EncodedRequest::into_buf`]), written with vectored I/O: `write_all_buf`
/// hands `chunks_vectored` to `writev`, so payloads are never copied into
/// one contiguous buffer. The connection queues whole frames in one too.
#[derive(Debug, Clone, Default)]
pub struct ChunkedBuf {
    /// Never holds an empty chunk, so `chunk()` is non-empty while bytes remain.
    chunks: VecDeque<Bytes>,
    remaining: usize,
}

impl ChunkedBuf {
    /// Appends `chunk` (an empty one is dropped).
    pub fn push(&mut self, chunk: Bytes) {
        if !chunk.is_empty() {
            self.remaining += chunk.len();
            self.chunks.push_back(chunk);
        }
    }
}

impl Buf for ChunkedBuf {
    fn remaining(&self) -> usize {
        self.remaining
    }

    fn chunk(&self) -> &[u8] {
        self.chunks.front().map_or(&[], |c| c.as_ref())
    }

    fn chunks_vectored<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let mut filled = 0;
        for (slot, chunk) in dst.iter_mut().zip(&self.chunks) {
            *slot = IoSlice::new(chunk);
            filled += 1;
        }
        filled
    }

    /// Advancing past the end empties the buffer instead of panicking.
    fn advance(&mut self, mut cnt: usize) {
        while cnt > 0 {
            let Some(front) = self.chunks.front_mut() else {
                break;
            };
            if cnt < front.len() {
                front.advance(cnt);
                self.remaining -= cnt;
                break;
            }
            cnt -= front.len();
            self.remaining -= front.len();
            self.chunks.pop_front();
        }
    }
}

/// Encodes a Produce request without copying any record chunk.
///
/// Errors ([`WireError::Encode`], never a panic): a version outside
/// [`MIN_PRODUCE_VERSION`]`..=`[`MAX_PRODUCE_VERSION`]; a [`TopicRef::Name`]
/// with v13 or a [`TopicRef::Id`] before v13; a string longer than 32767
/// bytes; a partition's records or the whole request longer than `i32::MAX`.
pub fn encode_produce_request(
    params: &ProduceRequestParams<'_>,
    topics: &[TopicRecords<'_>],
) -> Result<EncodedRequest> {
    let version = params.version;
    if !(MIN_PRODUCE_VERSION..=MAX_PRODUCE_VERSION).contains(&version) {
        return Err(encode_err(
            "produce request",
            format!(
                "version {version} is outside the supported range {MIN_PRODUCE_VERSION}..={MAX_PRODUCE_VERSION}"
            ),
        ));
    }
    let flexible = version >= FIRST_FLEXIBLE_VERSION;
    let payload_chunks = topics
        .iter()
        .flat_map(|t| &t.partitions)
        .map(|p| p.records.len())
        .fold(0usize, usize::saturating_add);
    let mut w = ChunkWriter::with_capacity(
        small_bytes_upper_bound(params, topics),
        // At most one encoder-owned piece before each payload chunk, plus the tail.
        payload_chunks.saturating_mul(2).saturating_add(1),
    );

    // Placeholder for the size prefix, patched once the total is known.
    w.buf.put_i32(0);

    // Request header v1 (v3-8) or v2 (v9+). The client id keeps its i16 length
    // in v2 so any broker can parse the header of any request.
    w.buf.put_i16(PRODUCE_API_KEY);
    w.buf.put_i16(version);
    w.buf.put_i32(params.correlation_id);
    put_string(&mut w.buf, params.client_id, false, "client id")?;
    put_empty_tags(&mut w.buf, flexible);

    put_string(
        &mut w.buf,
        params.transactional_id,
        flexible,
        "transactional id",
    )?;
    w.buf.put_i16(params.acks);
    w.buf.put_i32(params.timeout_ms);
    put_array_len(&mut w.buf, topics.len(), flexible, "topic array")?;
    for topic in topics {
        match (topic.topic, version >= FIRST_TOPIC_ID_VERSION) {
            (TopicRef::Name(name), false) => {
                put_string(&mut w.buf, Some(name), flexible, "topic name")?;
            }
            (TopicRef::Id(id), true) => w.buf.put_slice(&id),
            (TopicRef::Name(name), true) => {
                return Err(encode_err(
                    "topic",
                    format!("Produce v{version} identifies topics by id, got the name {name:?}"),
                ));
            }
            (TopicRef::Id(_), false) => {
                return Err(encode_err(
                    "topic",
                    format!(
                        "Produce v{version} identifies topics by name; ids need v{FIRST_TOPIC_ID_VERSION}+"
                    ),
                ));
            }
        }
        put_array_len(
            &mut w.buf,
            topic.partitions.len(),
            flexible,
            "partition array",
        )?;
        for partition in &topic.partitions {
            w.buf.put_i32(partition.partition);
            let records_len = partition
                .records
                .iter()
                .try_fold(0usize, |acc, c| acc.checked_add(c.len()))
                .and_then(|n| i32::try_from(n).ok())
                .ok_or_else(|| {
                    encode_err(
                        "records",
                        format!(
                            "partition {} records exceed {} bytes",
                            partition.partition,
                            i32::MAX
                        ),
                    )
                })?;
            put_len(&mut w.buf, records_len, flexible);
            for chunk in &partition.records {
                w.push_payload(chunk)?;
            }
            put_empty_tags(&mut w.buf, flexible);
        }
        put_empty_tags(&mut w.buf, flexible);
    }
    put_empty_tags(&mut w.buf, flexible);
    w.finish()
}

/// The request body alone: no size prefix and no request header, for a
/// connection that writes its own header (and assigns correlation ids).
/// `params.correlation_id` and `params.client_id` are ignored.
pub fn encode_produce_body(
    params: &ProduceRequestParams<'_>,
    topics: &[TopicRecords<'_>],
) -> Result<EncodedRequest> {
    let params = ProduceRequestParams {
        correlation_id: 0,
        client_id: None,
        ..*params
    };
    let mut request = encode_produce_request(&params, topics)?;
    // prefix, api key, version, correlation id, null client id, header tags (v9+)
    let header =
        SIZE_PREFIX_LEN + 2 + 2 + 4 + 2 + usize::from(params.version >= FIRST_FLEXIBLE_VERSION);
    // The first chunk is encoder-owned and always runs past the header:
    // transactional id, acks and timeout follow it.
    let first = request
        .chunks
        .first_mut()
        .filter(|c| c.len() > header)
        .ok_or_else(|| encode_err("produce request", "header layout changed".to_string()))?;
    first.advance(header);
    request.len -= header;
    Ok(request)
}

/// Collects encoder-owned bytes in one buffer and remembers where the
/// caller's chunks go between them.
struct ChunkWriter {
    buf: BytesMut,
    pieces: Vec<Piece>,
    /// End of the encoder-owned bytes already assigned to a piece.
    small_end: usize,
    payload_len: usize,
}

enum Piece {
    /// `buf[start..end]`, where `start` is the previous small piece's end.
    Small {
        end: usize,
    },
    Payload(Bytes),
}

impl ChunkWriter {
    fn with_capacity(small_bytes: usize, pieces: usize) -> Self {
        Self {
            buf: BytesMut::with_capacity(small_bytes),
            pieces: Vec::with_capacity(pieces),
            small_end: 0,
            payload_len: 0,
        }
    }

    fn push_payload(&mut self, chunk: &Bytes) -> Result<()> {
        if chunk.is_empty() {
            return Ok(());
        }
        self.cut_small();
        self.payload_len = self
            .payload_len
            .checked_add(chunk.len())
            .ok_or_else(|| too_large(usize::MAX))?;
        // A clone is a reference-count increment: same allocation, same pointer.
        self.pieces.push(Piece::Payload(chunk.clone()));
        Ok(())
    }

    /// Ends the current run of encoder-owned bytes, if any, at the write position.
    fn cut_small(&mut self) {
        if self.buf.len() > self.small_end {
            self.small_end = self.buf.len();
            self.pieces.push(Piece::Small {
                end: self.small_end,
            });
        }
    }

    fn finish(mut self) -> Result<EncodedRequest> {
        self.cut_small();
        let body_len = (self.buf.len().saturating_sub(SIZE_PREFIX_LEN))
            .checked_add(self.payload_len)
            .ok_or_else(|| too_large(usize::MAX))?;
        let prefix = i32::try_from(body_len).map_err(|_| too_large(body_len))?;
        if let Some(slot) = self.buf.get_mut(..SIZE_PREFIX_LEN) {
            slot.copy_from_slice(&prefix.to_be_bytes());
        }
        let small = self.buf.freeze();
        let mut start = 0;
        let chunks = self
            .pieces
            .into_iter()
            .map(|piece| match piece {
                // Slicing a frozen buffer shares it: one allocation for all small pieces.
                Piece::Small { end } => {
                    let chunk = small.slice(start..end);
                    start = end;
                    chunk
                }
                Piece::Payload(chunk) => chunk,
            })
            .collect();
        Ok(EncodedRequest {
            chunks,
            len: SIZE_PREFIX_LEN + body_len,
        })
    }
}

/// An upper bound on the encoder-owned bytes, so the buffer never regrows.
/// Saturating: it is only a capacity hint.
fn small_bytes_upper_bound(
    params: &ProduceRequestParams<'_>,
    topics: &[TopicRecords<'_>],
) -> usize {
    // Varint lengths take at most 5 bytes, tag sections 1; fixed-width fields as written.
    const LEN: usize = 5;
    const TAGS: usize = 1;
    let fixed = SIZE_PREFIX_LEN + 2 + 2 + 4 + 2 + TAGS + LEN + 2 + 4 + LEN + TAGS;
    let strings = params
        .client_id
        .map_or(0, str::len)
        .saturating_add(params.transactional_id.map_or(0, str::len));
    topics.iter().fold(fixed.saturating_add(strings), |acc, t| {
        let name = match t.topic {
            TopicRef::Name(name) => LEN.saturating_add(name.len()),
            TopicRef::Id(_) => 16,
        };
        let partitions = t.partitions.len().saturating_mul(4 + LEN + TAGS);
        acc.saturating_add(name.saturating_add(LEN + TAGS))
            .saturating_add(partitions)
    })
}

fn put_empty_tags(buf: &mut BytesMut, flexible: bool) {
    if flexible {
        buf.put_u8(0);
    }
}

/// A length known to fit `i32`: `i32` for classic versions, unsigned varint
/// of `len + 1` for compact ones (0 being null).
fn put_len(buf: &mut BytesMut, len: i32, flexible: bool) {
    if flexible {
        // len is non-negative and at most i32::MAX, so len + 1 fits u32.
        put_unsigned_varint(buf, len.unsigned_abs() + 1);
    } else {
        buf.put_i32(len);
    }
}

fn put_string(
    buf: &mut BytesMut,
    s: Option<&str>,
    compact: bool,
    what: &'static str,
) -> Result<()> {
    let Some(s) = s else {
        if compact {
            put_unsigned_varint(buf, 0);
        } else {
            buf.put_i16(-1);
        }
        return Ok(());
    };
    let len = i16::try_from(s.len()).map_err(|_| {
        encode_err(
            what,
            format!(
                "{} bytes exceeds the {MAX_STRING_LEN}-byte string limit",
                s.len()
            ),
        )
    })?;
    if compact {
        put_unsigned_varint(buf, u32::from(len.unsigned_abs()) + 1);
    } else {
        buf.put_i16(len);
    }
    buf.put_slice(s.as_bytes());
    Ok(())
}

fn put_array_len(buf: &mut BytesMut, n: usize, compact: bool, what: &'static str) -> Result<()> {
    let n = i32::try_from(n)
        .map_err(|_| encode_err(what, format!("{n} elements do not fit a 32-bit count")))?;
    put_len(buf, n, compact);
    Ok(())
}

fn too_large(len: usize) -> WireError {
    encode_err(
        "produce request",
        format!("{len} bytes does not fit a 32-bit size prefix"),
    )
}

fn encode_err(what: &'static str, detail: String) -> WireError {
    WireError::Encode { what, detail }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{ProduceRequest, RequestHeader};
    use kafka_protocol::protocol::{Decodable, HeaderVersion};
    use proptest::prelude::*;
    use std::io::Write;

    const ALL_VERSIONS: std::ops::RangeInclusive<i16> = MIN_PRODUCE_VERSION..=MAX_PRODUCE_VERSION;

    fn concat(chunks: &[Bytes]) -> Vec<u8> {
        chunks.iter().flat_map(|c| c.iter().copied()).collect()
    }

    fn topic_for(version: i16, i: usize) -> TopicRef<'static> {
        const NAMES: [&str; 4] = [
            "orders",
            "payments.eu-west",
            "t",
            "a-much-longer-topic-name",
        ];
        if version >= FIRST_TOPIC_ID_VERSION {
            let mut id = [0xa5; 16];
            id[..8].copy_from_slice(&u64::try_from(i).unwrap().to_be_bytes());
            TopicRef::Id(id)
        } else {
            TopicRef::Name(NAMES[i % NAMES.len()])
        }
    }

    /// `len` bytes of a pattern that depends on `seed`, so misplaced bytes show.
    fn chunk(len: usize, seed: usize) -> Bytes {
        let seed = u8::try_from(seed % 256).unwrap();
        (0..=u8::MAX)
            .cycle()
            .take(len)
            .map(|b| b ^ seed)
            .collect::<Vec<u8>>()
            .into()
    }

    /// Decodes with kafka-protocol and compares every field with the input.
    fn check_against_kafka_protocol(
        params: &ProduceRequestParams<'_>,
        topics: &[TopicRecords<'_>],
        encoded: &EncodedRequest,
    ) {
        let version = params.version;
        let wire = concat(&encoded.chunks);
        assert_eq!(encoded.len, wire.len(), "len is the real length");
        assert!(encoded.chunks.iter().all(|c| !c.is_empty()));

        let mut buf = Bytes::from(wire);
        let size = buf.get_i32();
        assert_eq!(usize::try_from(size).unwrap(), buf.len(), "size prefix");
        let header =
            RequestHeader::decode(&mut buf, ProduceRequest::header_version(version)).unwrap();
        let req = ProduceRequest::decode(&mut buf, version).unwrap();
        assert!(buf.is_empty(), "v{version}: {} trailing bytes", buf.len());

        assert_eq!(header.request_api_key, PRODUCE_API_KEY);
        assert_eq!(header.request_api_version, version);
        assert_eq!(header.correlation_id, params.correlation_id);
        assert_eq!(header.client_id.as_deref(), params.client_id);
        assert!(header.unknown_tagged_fields.is_empty());

        assert_eq!(
            req.transactional_id.as_ref().map(|t| &***t),
            params.transactional_id
        );
        assert_eq!(req.acks, params.acks);
        assert_eq!(req.timeout_ms, params.timeout_ms);
        assert!(req.unknown_tagged_fields.is_empty());
        assert_eq!(req.topic_data.len(), topics.len());
        for (got, want) in req.topic_data.iter().zip(topics) {
            match want.topic {
                TopicRef::Name(name) => assert_eq!(&**got.name, name),
                TopicRef::Id(id) => assert_eq!(got.topic_id.as_bytes(), &id),
            }
            assert!(got.unknown_tagged_fields.is_empty());
            assert_eq!(got.partition_data.len(), want.partitions.len());
            for (gp, wp) in got.partition_data.iter().zip(&want.partitions) {
                assert_eq!(gp.index, wp.partition);
                assert_eq!(gp.records.as_deref(), Some(&concat(&wp.records)[..]));
                assert!(gp.unknown_tagged_fields.is_empty());
            }
        }
    }

    /// Every non-empty caller chunk appears, in order, as the very same
    /// allocation; everything else is encoder-owned, never two in a row, and
    /// all encoder-owned chunks are consecutive slices of one buffer.
    fn check_zero_copy(topics: &[TopicRecords<'_>], encoded: &EncodedRequest) {
        let payloads: Vec<&Bytes> = topics
            .iter()
            .flat_map(|t| &t.partitions)
            .flat_map(|p| &p.records)
            .filter(|c| !c.is_empty())
            .collect();
        let mut next = 0;
        let mut prev_small: Option<&Bytes> = None;
        let mut prev_was_small = false;
        for c in &encoded.chunks {
            let is_payload = payloads
                .get(next)
                .is_some_and(|p| p.as_ptr() == c.as_ptr() && p.len() == c.len());
            if is_payload {
                next += 1;
                prev_was_small = false;
            } else {
                assert!(!prev_was_small, "adjacent small pieces are coalesced");
                if let Some(prev) = prev_small {
                    assert_eq!(
                        prev.as_ptr().addr() + prev.len(),
                        c.as_ptr().addr(),
                        "small pieces share one buffer"
                    );
                }
                prev_small = Some(c);
                prev_was_small = true;
            }
        }
        assert_eq!(next, payloads.len(), "every payload chunk passed through");
    }

    fn sample_topics(version: i16) -> Vec<TopicRecords<'static>> {
        (0..3usize)
            .map(|t| TopicRecords {
                topic: topic_for(version, t),
                partitions: (0..=t)
                    .map(|p| PartitionRecords {
                        partition: i32::try_from(p * 7).unwrap(),
                        // A 61-byte rewritten header, an empty chunk, then the payload.
                        records: vec![chunk(61, p), Bytes::new(), chunk(200 + t, t)],
                    })
                    .collect(),
            })
            .collect()
    }

    #[test]
    fn every_version_decodes_with_kafka_protocol() {
        for version in ALL_VERSIONS {
            let params = ProduceRequestParams {
                version,
                correlation_id: 1000 + i32::from(version),
                client_id: (version % 2 == 0).then_some("ferry"),
                transactional_id: (version % 3 == 0).then_some("ferry-txn"),
                acks: -1,
                timeout_ms: 30_000,
            };
            let topics = sample_topics(version);
            let encoded = encode_produce_request(&params, &topics).unwrap();
            check_against_kafka_protocol(&params, &topics, &encoded);
            check_zero_copy(&topics, &encoded);
        }
    }

    #[test]
    fn matches_kafka_protocol_byte_for_byte() {
        use kafka_protocol::messages::TopicName;
        use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
        use kafka_protocol::protocol::{Encodable, StrBytes};
        for version in ALL_VERSIONS {
            let params = ProduceRequestParams {
                version,
                correlation_id: 7,
                client_id: Some("c"),
                transactional_id: None,
                acks: 1,
                timeout_ms: 1500,
            };
            let topics = sample_topics(version);
            let ours = concat(&encode_produce_request(&params, &topics).unwrap().chunks);

            let header = RequestHeader::default()
                .with_request_api_key(PRODUCE_API_KEY)
                .with_request_api_version(version)
                .with_correlation_id(7)
                .with_client_id(Some(StrBytes::from_static_str("c")));
            let body = ProduceRequest::default()
                .with_acks(1)
                .with_timeout_ms(1500)
                .with_topic_data(
                    topics
                        .iter()
                        .map(|t| {
                            let data = TopicProduceData::default().with_partition_data(
                                t.partitions
                                    .iter()
                                    .map(|p| {
                                        PartitionProduceData::default()
                                            .with_index(p.partition)
                                            .with_records(Some(Bytes::from(concat(&p.records))))
                                    })
                                    .collect(),
                            );
                            match t.topic {
                                TopicRef::Name(n) => {
                                    data.with_name(TopicName(StrBytes::from_string(n.to_owned())))
                                }
                                TopicRef::Id(id) => data.with_topic_id(uuid::Uuid::from_bytes(id)),
                            }
                        })
                        .collect(),
                );
            let mut theirs = BytesMut::new();
            theirs.put_i32(0);
            header
                .encode(&mut theirs, ProduceRequest::header_version(version))
                .unwrap();
            body.encode(&mut theirs, version).unwrap();
            let size = i32::try_from(theirs.len() - 4).unwrap();
            theirs[..4].copy_from_slice(&size.to_be_bytes());
            assert_eq!(ours, &theirs[..], "v{version}");
        }
    }

    #[test]
    fn empty_request_and_empty_records_encode() {
        for version in ALL_VERSIONS {
            let params = ProduceRequestParams {
                version,
                correlation_id: -1,
                client_id: None,
                transactional_id: None,
                acks: 0,
                timeout_ms: 0,
            };
            let encoded = encode_produce_request(&params, &[]).unwrap();
            assert_eq!(encoded.chunks.len(), 1, "all small pieces coalesced");
            check_against_kafka_protocol(&params, &[], &encoded);

            let topics = vec![TopicRecords {
                topic: topic_for(version, 0),
                partitions: vec![PartitionRecords {
                    partition: 3,
                    records: vec![],
                }],
            }];
            let encoded = encode_produce_request(&params, &topics).unwrap();
            check_against_kafka_protocol(&params, &topics, &encoded);
        }
    }

    #[test]
    fn out_of_range_inputs_are_encode_errors() {
        let base = ProduceRequestParams {
            version: 9,
            correlation_id: 1,
            client_id: None,
            transactional_id: None,
            acks: -1,
            timeout_ms: 1,
        };
        let is_encode_err = |r: Result<EncodedRequest>| matches!(r, Err(WireError::Encode { .. }));
        for version in [i16::MIN, -1, 0, 2, 14, i16::MAX] {
            let p = ProduceRequestParams { version, ..base };
            assert!(is_encode_err(encode_produce_request(&p, &[])), "v{version}");
        }

        let named = [TopicRecords {
            topic: TopicRef::Name("t"),
            partitions: vec![],
        }];
        let by_id = [TopicRecords {
            topic: TopicRef::Id([1; 16]),
            partitions: vec![],
        }];
        let v13 = ProduceRequestParams {
            version: 13,
            ..base
        };
        let v12 = ProduceRequestParams {
            version: 12,
            ..base
        };
        assert!(is_encode_err(encode_produce_request(&v13, &named)));
        assert!(is_encode_err(encode_produce_request(&v12, &by_id)));

        let max_len = usize::try_from(MAX_STRING_LEN).unwrap();
        let long = "x".repeat(max_len + 1);
        let max = "x".repeat(max_len);
        for compact_version in [8, 9] {
            let p = ProduceRequestParams {
                version: compact_version,
                ..base
            };
            let with = |client_id, transactional_id| ProduceRequestParams {
                client_id,
                transactional_id,
                ..p
            };
            assert!(is_encode_err(encode_produce_request(
                &with(Some(&long), None),
                &[]
            )));
            assert!(is_encode_err(encode_produce_request(
                &with(None, Some(&long)),
                &[]
            )));
            let long_topic = [TopicRecords {
                topic: TopicRef::Name(&long),
                partitions: vec![],
            }];
            assert!(is_encode_err(encode_produce_request(&p, &long_topic)));
            let ok = encode_produce_request(&with(Some(&max), Some(&max)), &[]).unwrap();
            check_against_kafka_protocol(&with(Some(&max), Some(&max)), &[], &ok);
        }
    }

    #[test]
    fn lengths_beyond_i32_are_encode_errors_not_panics() {
        // Static memory: a few thousand 1 MiB chunks cost no allocation.
        static MIB: [u8; 1 << 20] = [0; 1 << 20];
        let mib = Bytes::from_static(&MIB);
        let params = ProduceRequestParams {
            version: 3,
            correlation_id: 1,
            client_id: None,
            transactional_id: None,
            acks: -1,
            timeout_ms: 1,
        };
        let partition = |mibs: usize| PartitionRecords {
            partition: 0,
            records: vec![mib.clone(); mibs],
        };
        for version in [3, 9] {
            let params = ProduceRequestParams { version, ..params };
            // One partition over i32::MAX.
            let topics = [TopicRecords {
                topic: TopicRef::Name("t"),
                partitions: vec![partition(2048)],
            }];
            let err = encode_produce_request(&params, &topics).unwrap_err();
            assert!(
                matches!(
                    err,
                    WireError::Encode {
                        what: "records",
                        ..
                    }
                ),
                "{err}"
            );
            // Each partition fits, the request does not.
            let topics = [TopicRecords {
                topic: TopicRef::Name("t"),
                partitions: vec![partition(1100), partition(1100)],
            }];
            let err = encode_produce_request(&params, &topics).unwrap_err();
            assert!(
                matches!(
                    err,
                    WireError::Encode {
                        what: "produce request",
                        ..
                    }
                ),
                "{err}"
            );
            // Just under the limit: fine, and still nothing copied.
            let topics = [TopicRecords {
                topic: TopicRef::Name("t"),
                partitions: vec![partition(2000)],
            }];
            let ok = encode_produce_request(&params, &topics).unwrap();
            assert_eq!(ok.len, ok.chunks.iter().map(Bytes::len).sum::<usize>());
            assert!(
                ok.chunks
                    .iter()
                    .filter(|c| c.as_ptr() == MIB.as_ptr())
                    .count()
                    == 2000
            );
        }
    }

    #[test]
    fn chunked_buf_writes_vectored_and_advances_across_chunks() {
        let params = ProduceRequestParams {
            version: 11,
            correlation_id: 5,
            client_id: Some("ferry"),
            transactional_id: None,
            acks: -1,
            timeout_ms: 100,
        };
        let topics = sample_topics(11);
        let encoded = encode_produce_request(&params, &topics).unwrap();
        let expected = concat(&encoded.chunks);
        let mut buf = encoded.clone().into_buf();
        assert_eq!(buf.remaining(), expected.len());

        // A writer that takes at most 37 bytes per call, to cut through chunks.
        let mut out = Vec::new();
        while buf.has_remaining() {
            let mut slices = [IoSlice::new(&[]); 4];
            let n = buf.chunks_vectored(&mut slices);
            assert!(n > 0);
            let mut all = Vec::new();
            let written = all.write_vectored(&slices[..n]).unwrap();
            let taken = written.min(37);
            out.extend_from_slice(&all[..taken]);
            buf.advance(taken);
        }
        assert_eq!(out, expected);
        assert!(buf.chunk().is_empty());

        let mut buf = encoded.into_buf();
        buf.advance(usize::MAX);
        assert_eq!(buf.remaining(), 0, "over-advance empties, no panic");
    }

    proptest! {
        #[test]
        fn random_requests_round_trip_without_copying(
            version in MIN_PRODUCE_VERSION..=MAX_PRODUCE_VERSION,
            shape in prop::collection::vec(
                prop::collection::vec(
                    (any::<i32>(), prop::collection::vec(0usize..300, 0..4)),
                    0..5,
                ),
                0..4,
            ),
            correlation_id in any::<i32>(),
            acks in prop::sample::select(vec![-1i16, 0, 1]),
            timeout_ms in any::<i32>(),
            client_id in prop::option::of("[a-z0-9.-]{0,20}"),
            transactional_id in prop::option::of("[a-z0-9.-]{0,20}"),
        ) {
            let topics: Vec<TopicRecords<'_>> = shape
                .iter()
                .enumerate()
                .map(|(t, partitions)| TopicRecords {
                    topic: topic_for(version, t),
                    partitions: partitions
                        .iter()
                        .map(|(partition, sizes)| PartitionRecords {
                            partition: *partition,
                            records: sizes.iter().map(|&n| chunk(n, n)).collect(),
                        })
                        .collect(),
                })
                .collect();
            let params = ProduceRequestParams {
                version,
                correlation_id,
                client_id: client_id.as_deref(),
                transactional_id: transactional_id.as_deref(),
                acks,
                timeout_ms,
            };
            let encoded = encode_produce_request(&params, &topics).unwrap();
            check_against_kafka_protocol(&params, &topics, &encoded);
            check_zero_copy(&topics, &encoded);
            let payload: usize = topics
                .iter()
                .flat_map(|t| &t.partitions)
                .flat_map(|p| &p.records)
                .map(Bytes::len)
                .sum();
            prop_assert!(
                small_bytes_upper_bound(&params, &topics) >= encoded.len - payload,
                "the small-piece buffer never regrows"
            );
        }
    }

    #[test]
    fn body_is_the_request_without_prefix_and_header() {
        for version in MIN_PRODUCE_VERSION..=MAX_PRODUCE_VERSION {
            let topic = if version >= FIRST_TOPIC_ID_VERSION {
                TopicRef::Id([7; 16])
            } else {
                TopicRef::Name("t")
            };
            let topics = [TopicRecords {
                topic,
                partitions: vec![PartitionRecords {
                    partition: 1,
                    records: vec![
                        Bytes::from_static(b"header"),
                        Bytes::from_static(b"payload"),
                    ],
                }],
            }];
            let params = ProduceRequestParams {
                version,
                correlation_id: 0,
                client_id: None,
                transactional_id: None,
                acks: -1,
                timeout_ms: 1000,
            };
            let full: Vec<u8> = encode_produce_request(&params, &topics)
                .unwrap()
                .chunks
                .concat();
            let body = encode_produce_body(&params, &topics).unwrap();
            let body_bytes: Vec<u8> = body.chunks.concat();
            assert_eq!(body.len, body_bytes.len());
            assert!(full.ends_with(&body_bytes), "v{version}");
            let header = full.len() - body_bytes.len();
            assert_eq!(
                header,
                4 + 10 + usize::from(version >= FIRST_FLEXIBLE_VERSION)
            );
        }
    }
}
