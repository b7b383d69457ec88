//! Header rewrites for re-producing a batch, with the CRC patched in O(log n).
//!
//! CRC-32C is affine over GF(2): for equal-length inputs,
//! `crc(a) ^ crc(b) == crc(a ^ b) ^ crc(0…0)`. Changing only the 40 covered
//! header bytes (21..61) and keeping the `n` payload bytes therefore changes the
//! CRC by `crc(D ‖ 0ⁿ) ^ crc(0⁴⁰ ‖ 0ⁿ)` where `D` is the XOR of old and new
//! header bytes. Extending a CRC over `n` zero bytes takes O(log n) steps
//! ([`crate::crc`]), so the payload is never read.

use bytes::{BufMut, Bytes, BytesMut};

use crate::{Result, WireError};

use super::{BatchHeader, CRC_COVERED_START, RECORD_BATCH_OVERHEAD, RecordBatch};

/// Number of CRC-covered header bytes (attributes..recordCount).
const COVERED_HEADER_LEN: usize = RECORD_BATCH_OVERHEAD - CRC_COVERED_START;

/// A batch ready to be re-produced: a new 61-byte header and the original
/// payload bytes, untouched. Write both chunks; never concatenate them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RewrittenBatch {
    header: Bytes,
    payload: Bytes,
}

impl RewrittenBatch {
    /// The rewritten 61-byte header.
    pub fn header_bytes(&self) -> &Bytes {
        &self.header
    }

    /// The original payload (a slice of the fetched data).
    pub fn payload(&self) -> &Bytes {
        &self.payload
    }

    /// The two chunks to write, in order.
    pub fn into_chunks(self) -> [Bytes; 2] {
        [self.header, self.payload]
    }

    /// Total batch size in bytes.
    pub fn len(&self) -> usize {
        self.header.len() + self.payload.len()
    }

    /// Never true.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The batch as one contiguous buffer. Copies the payload: for tests and the
    /// slow path only.
    pub fn to_contiguous(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(self.len());
        b.extend_from_slice(&self.header);
        b.extend_from_slice(&self.payload);
        b.freeze()
    }
}

/// The CRC of a batch whose covered header bytes changed from `old` to `new`,
/// given its old CRC and its payload length.
pub fn patch_crc(
    old_crc: u32,
    old: &[u8; RECORD_BATCH_OVERHEAD],
    new: &[u8; RECORD_BATCH_OVERHEAD],
    payload_len: usize,
) -> u32 {
    let mut diff = [0u8; COVERED_HEADER_LEN];
    let mut changed = false;
    for (d, (o, n)) in diff.iter_mut().zip(
        old[CRC_COVERED_START..]
            .iter()
            .zip(&new[CRC_COVERED_START..]),
    ) {
        *d = o ^ n;
        changed |= *d != 0;
    }
    if !changed {
        return old_crc;
    }
    let zeros = [0u8; COVERED_HEADER_LEN];
    let header_diff = crc32c::crc32c(&diff) ^ crc32c::crc32c(&zeros);
    old_crc ^ crate::crc::shift_crc_difference(header_diff, payload_len)
}

impl RecordBatch {
    /// Re-heads this batch with `new`'s fields and a CRC patched from the stored
    /// one. Only fields outside the payload may change: `batch_length` and
    /// `magic` must stay; `crc` in `new` is ignored.
    ///
    /// A batch whose stored CRC was already wrong keeps a wrong CRC (the patch
    /// preserves the error), so corruption is never blessed; callers that want
    /// to fail early call [`RecordBatch::verify_crc`] first.
    ///
    /// `scratch` amortises the 61-byte header allocation across batches.
    pub fn rewrite_header(
        &self,
        new: &BatchHeader,
        scratch: &mut BytesMut,
    ) -> Result<RewrittenBatch> {
        let old = self.header();
        if new.batch_length != old.batch_length || new.magic != old.magic {
            return Err(WireError::Encode {
                what: "batch header rewrite",
                detail: format!(
                    "batch length and magic cannot change (batch at offset {})",
                    old.base_offset
                ),
            });
        }
        let old_bytes = old.encode();
        let mut fresh = BatchHeader { crc: 0, ..*new }.encode();
        let payload = self.payload();
        let crc = patch_crc(old.crc, &old_bytes, &fresh, payload.len());
        fresh[super::CRC_OFFSET..CRC_COVERED_START].copy_from_slice(&crc.to_be_bytes());
        if scratch.capacity() - scratch.len() < RECORD_BATCH_OVERHEAD {
            scratch.reserve(RECORD_BATCH_OVERHEAD * 64);
        }
        scratch.put_slice(&fresh);
        let header = scratch.split_to(scratch.len()).freeze();
        Ok(RewrittenBatch { header, payload })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{MAGIC_V2, attributes};
    use proptest::prelude::*;

    fn batch_with(header: BatchHeader, payload: &[u8]) -> RecordBatch {
        let mut h = BatchHeader {
            batch_length: i32::try_from(RECORD_BATCH_OVERHEAD - 12 + payload.len()).unwrap(),
            magic: MAGIC_V2,
            ..header
        };
        let mut buf = h.encode().to_vec();
        buf.extend_from_slice(payload);
        h.crc = crc32c::crc32c(&buf[CRC_COVERED_START..]);
        buf[17..21].copy_from_slice(&h.crc.to_be_bytes());
        RecordBatch::new(Bytes::from(buf)).unwrap()
    }

    fn arb_header() -> impl Strategy<Value = BatchHeader> {
        (
            any::<i64>(),
            any::<i32>(),
            any::<i16>(),
            0..i32::MAX,
            any::<i64>(),
            any::<i64>(),
            any::<i64>(),
            any::<i16>(),
            any::<i32>(),
            0..i32::MAX,
        )
            .prop_map(
                |(bo, ple, attr, lod, bt, mt, pid, pe, seq, cnt)| BatchHeader {
                    base_offset: bo,
                    batch_length: 0,
                    partition_leader_epoch: ple,
                    magic: MAGIC_V2,
                    crc: 0,
                    attributes: attr,
                    last_offset_delta: lod,
                    base_timestamp: bt,
                    max_timestamp: mt,
                    producer_id: pid,
                    producer_epoch: pe,
                    base_sequence: seq,
                    record_count: cnt,
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn patched_crc_equals_full_recompute(
            old in arb_header(),
            new in arb_header(),
            payload in prop::collection::vec(any::<u8>(), 0..20_000),
        ) {
            let batch = batch_with(old, &payload);
            let new = BatchHeader { batch_length: batch.header().batch_length, ..new };
            let mut scratch = BytesMut::new();
            let rewritten = batch.rewrite_header(&new, &mut scratch).unwrap();
            let whole = rewritten.to_contiguous();
            let reparsed = RecordBatch::new(whole).unwrap();
            prop_assert!(reparsed.verify_crc().is_ok());
            prop_assert_eq!(*reparsed.header(), BatchHeader { crc: reparsed.header().crc, ..new });
            prop_assert_eq!(rewritten.payload().as_ptr(), batch.payload().as_ptr());
        }

        #[test]
        fn corrupt_batches_stay_corrupt(
            old in arb_header(),
            new in arb_header(),
            payload in prop::collection::vec(any::<u8>(), 1..2_000),
            flip in any::<prop::sample::Index>(),
        ) {
            let good = batch_with(old, &payload);
            let mut bytes = good.as_bytes().to_vec();
            let at = RECORD_BATCH_OVERHEAD + flip.index(payload.len());
            bytes[at] ^= 0x01;
            let bad = RecordBatch::new(Bytes::from(bytes)).unwrap();
            prop_assert!(bad.verify_crc().is_err());
            let new = BatchHeader { batch_length: bad.header().batch_length, ..new };
            let rewritten = bad.rewrite_header(&new, &mut BytesMut::new()).unwrap();
            prop_assert!(RecordBatch::new(rewritten.to_contiguous()).unwrap().verify_crc().is_err());
        }
    }

    #[test]
    fn typical_replication_rewrite() {
        let src = BatchHeader {
            base_offset: 1234,
            batch_length: 0,
            partition_leader_epoch: 5,
            magic: MAGIC_V2,
            crc: 0,
            attributes: 3 | attributes::TRANSACTIONAL | attributes::DELETE_HORIZON,
            last_offset_delta: 2,
            base_timestamp: 10,
            max_timestamp: 20,
            producer_id: 77,
            producer_epoch: 1,
            base_sequence: 9,
            record_count: 3,
        };
        let batch = batch_with(src, &[9u8; 300]);
        let mut new = *batch.header();
        new.base_offset = 0;
        new.partition_leader_epoch = -1;
        new.attributes &= !(attributes::TRANSACTIONAL | attributes::DELETE_HORIZON);
        new.producer_id = 5000;
        new.producer_epoch = 0;
        new.base_sequence = 0;
        let mut scratch = BytesMut::new();
        let out = batch.rewrite_header(&new, &mut scratch).unwrap();
        assert_eq!(out.header_bytes().len(), RECORD_BATCH_OVERHEAD);
        RecordBatch::new(out.to_contiguous())
            .unwrap()
            .verify_crc()
            .unwrap();
    }

    #[test]
    fn length_and_magic_cannot_change() {
        let batch = batch_with(
            BatchHeader::parse(&[0u8; RECORD_BATCH_OVERHEAD]).unwrap(),
            b"abc",
        );
        let mut new = *batch.header();
        new.batch_length += 1;
        assert!(batch.rewrite_header(&new, &mut BytesMut::new()).is_err());
    }
}
