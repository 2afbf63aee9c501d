import FuzzSupport

@testable import Capture

/// One direction of a TCP connection: segments of a known byte stream arriving out of order,
/// overlapping, retransmitted, around sequence-number wrap, with SYN, FIN and RST, the peer's
/// acknowledgements and the engine's give-ups, all chosen by the input. Every byte of the true
/// stream is a function of its position, so misplaced bytes show.
///
/// Checks: each delivery starts where the previous one ended plus any reported gap, and holds
/// the stream's bytes for its position; the reassembler's next sequence number agrees with
/// that; it never delivers more bytes than it received (nor delivered plus counted as
/// retransmitted); the reorder buffer stays within its limit; nothing arrives after the end,
/// which is reported once.
@main
enum FuzzTCPReassembler {
    static func main() {
        runFuzzer { data, size in
            FuzzTCPReassembler.testOneInput(fuzzInput(data, size))
            return 0
        }
    }

    /// The stream byte at `position` (relative to the first data byte; negative before it).
    static func streamByte(_ position: Int) -> UInt8 {
        UInt8(truncatingIfNeeded: position &* 131 ^ (position >> 7) &* 29 ^ (position >> 14))
    }

    struct CheckingSink: StreamSink {
        let base: UInt32
        /// Where the next delivery must start; nil until known or after a gap of unknown size.
        var expected: UInt32?
        var delivered = 0
        var ended = false

        mutating func deliver(_ bytes: UnsafeRawBufferPointer, mark: StreamMark) {
            invariant(!ended, "delivery after the end")
            invariant(!bytes.isEmpty, "empty delivery")
            if let expected {
                invariant(mark.sequence == expected, "delivery at \(mark.sequence), expected \(expected)")
            }
            let position = TCPStreamReassembler.distance(mark.sequence, base)
            for (index, byte) in bytes.enumerated() {
                invariant(
                    byte == FuzzTCPReassembler.streamByte(position + index),
                    "byte \(index) of a delivery at stream position \(position) is not the stream's")
            }
            delivered += bytes.count
            expected = mark.sequence &+ UInt32(truncatingIfNeeded: bytes.count)
        }

        mutating func gap(lostBytes: Int?, reason: GiveUpReason) {
            invariant(!ended, "gap after the end")
            if let lostBytes {
                invariant(lostBytes >= 0, "negative gap")
                expected = expected.map { $0 &+ UInt32(truncatingIfNeeded: lostBytes) }
            } else {
                expected = nil
            }
        }

        mutating func end(reset: Bool) {
            invariant(!ended, "ended twice")
            ended = true
        }
    }

    static func testOneInput(_ input: UnsafeRawBufferPointer) {
        var bytes = FuzzBytes(input)
        let base = bytes.take(UInt32.self)
        let maxBuffered = Int(bytes.take(UInt8.self)) * 8
        var reassembler = TCPStreamReassembler(maxBufferedBytes: maxBuffered)
        var sink = CheckingSink(base: base)
        var received = 0 // payload bytes taken in before the end
        var given = 0 // every payload byte handed over (after the end they count as retransmitted)
        var timestamp: Int64 = 0

        while !bytes.isEmpty {
            let operation = bytes.take(UInt8.self)
            // Offsets from 512 before the first data byte to about 64 KiB after it.
            let offset = Int(bytes.take(UInt16.self)) - 512
            let sequence = base &+ UInt32(truncatingIfNeeded: offset)
            timestamp += 1
            let known = reassembler.nextSequence
            switch operation % 10 {
            case 0...5:
                let length = Int(bytes.take(UInt8.self) % 96)
                var flags: TCPFlags = []
                if operation & 0x10 != 0 { flags.insert(.fin) }
                if operation & 0xe0 == 0xe0 { flags.insert(.rst) }
                if operation & 0xe0 == 0x20 && length == 0 { flags.insert(.syn) }
                let payload = (0..<length).map { streamByte(offset + $0) }
                let wasEnded = reassembler.ended
                if !wasEnded, !flags.contains(.rst) { received += length }
                if wasEnded || !flags.contains(.rst) { given += length }
                let mark = StreamMark(timestamp: timestamp, sequence: sequence, acknowledgement: 0)
                // A SYN's sequence number is one before the first data byte.
                let segmentSequence = flags.contains(.syn) ? sequence &- 1 : sequence
                payload.withUnsafeBytes { raw in
                    reassembler.receive(sequence: segmentSequence, flags: flags, payload: raw, mark: mark, into: &sink)
                }
                invariant(
                    reassembler.bufferedBytes <= maxBuffered,
                    "reorder buffer holds \(reassembler.bufferedBytes) > \(maxBuffered)")
            case 6, 7:
                reassembler.peerAcknowledged(sequence, into: &sink)
            case 8:
                reassembler.resolveGap(reason: .sequenceGap, into: &sink)
            default:
                reassembler.discardBuffered(reason: .reorderBufferFull, into: &sink)
                invariant(reassembler.bufferedBytes == 0, "buffer not empty after discarding it")
            }
            if sink.expected == nil, known == nil, sink.delivered == 0 {
                // The start is known once the reassembler has taken it.
                sink.expected = reassembler.nextSequence
            }
            if let expected = sink.expected, !reassembler.ended {
                invariant(
                    reassembler.nextSequence == expected,
                    "next sequence \(String(describing: reassembler.nextSequence)) but deliveries and gaps reach \(expected)"
                )
            }
            invariant(reassembler.bufferedBytes >= 0, "negative buffered bytes")
            invariant(sink.delivered <= received, "delivered \(sink.delivered) of \(received) bytes received")
            invariant(
                sink.delivered + reassembler.retransmittedBytes <= given,
                "delivered \(sink.delivered) + retransmitted \(reassembler.retransmittedBytes) > given \(given)")
            invariant(sink.ended == reassembler.ended, "ended \(reassembler.ended) but the sink heard \(sink.ended)")
        }
    }
}
