/// Receives one direction's stream bytes in order, and hears about losses.
protocol StreamSink {
    mutating func deliver(_ bytes: UnsafeRawBufferPointer, mark: StreamMark)
    /// `lostBytes` of the stream will never be seen (nil: unknown amount).
    mutating func gap(lostBytes: Int?, reason: GiveUpReason)
    /// The stream ended with a FIN (`reset` false) or RST.
    mutating func end(reset: Bool)
}

/// Puts one direction of a TCP connection back in sequence order.
///
/// Tracks the next expected sequence number (from the SYN, or from the first
/// data seen for a connection picked up mid-stream), trims retransmitted and
/// overlapping bytes, buffers out-of-order segments up to a limit, and
/// declares a gap permanent when the receiver has acknowledged bytes that
/// were never captured, when it has been open longer than the expiry time,
/// or when the reorder buffer is full.
struct TCPStreamReassembler {
    private struct BufferedSegment {
        var sequence: UInt32
        var bytes: [UInt8]
        var mark: StreamMark
    }

    let maxBufferedBytes: Int
    /// Sequence number of the next byte to deliver; nil until known.
    private(set) var nextSequence: UInt32?
    /// Sequence number of the FIN, once seen.
    private var finSequence: UInt32?
    private var buffered: [BufferedSegment] = []
    private(set) var bufferedBytes = 0
    /// When the oldest outstanding gap opened (capture time, ns).
    private(set) var gapOpenedAt: Int64?
    private(set) var ended = false
    private(set) var sawSYN = false
    /// Counters the engine folds into its statistics.
    var retransmittedBytes = 0
    var outOfOrderSegments = 0

    init(maxBufferedBytes: Int) {
        self.maxBufferedBytes = maxBufferedBytes
    }

    /// Signed distance from `b` to `a` in sequence space.
    @inline(__always) static func distance(_ a: UInt32, _ b: UInt32) -> Int {
        Int(Int32(bitPattern: a &- b))
    }

    var hasGap: Bool { !buffered.isEmpty }

    mutating func receive<Sink: StreamSink>(
        sequence: UInt32, flags: TCPFlags, payload: UnsafeRawBufferPointer, mark: StreamMark, into sink: inout Sink
    ) {
        guard !ended else {
            if !payload.isEmpty { retransmittedBytes += payload.count }
            return
        }
        var dataSequence = sequence
        if flags.contains(.syn) {
            sawSYN = true
            dataSequence = sequence &+ 1
            if nextSequence == nil { nextSequence = dataSequence }
        }
        if flags.contains(.rst) {
            buffered.removeAll()
            bufferedBytes = 0
            gapOpenedAt = nil
            ended = true
            sink.end(reset: true)
            return
        }
        if !payload.isEmpty {
            if nextSequence == nil { nextSequence = dataSequence }
            accept(dataSequence, payload, mark: mark, into: &sink)
        }
        if flags.contains(.fin) {
            finSequence = dataSequence &+ UInt32(truncatingIfNeeded: payload.count)
        }
        checkFinished(into: &sink)
    }

    /// The other side acknowledged up to `ack`: bytes before it that were
    /// never captured are lost for good.
    mutating func peerAcknowledged<Sink: StreamSink>(_ ack: UInt32, into sink: inout Sink) {
        guard !ended else { return }
        var limit = ack
        // The FIN takes one sequence number that carries no byte.
        if let fin = finSequence, Self.distance(ack, fin) >= 0 { limit = fin }
        while !ended, let next = nextSequence {
            let acknowledged = Self.distance(limit, next)
            guard acknowledged > 0, acknowledged < (1 << 30) else { break }
            if let first = buffered.first, Self.distance(first.sequence, next) <= acknowledged {
                resolveGap(reason: .sequenceGap, into: &sink)
            } else {
                sink.gap(lostBytes: acknowledged, reason: .sequenceGap)
                nextSequence = limit
                drain(into: &sink)
                break
            }
        }
        checkFinished(into: &sink)
    }

    /// Gives up waiting for the bytes before the first buffered segment.
    mutating func resolveGap<Sink: StreamSink>(reason: GiveUpReason, into sink: inout Sink) {
        guard let first = buffered.first, let next = nextSequence else { return }
        sink.gap(lostBytes: max(0, Self.distance(first.sequence, next)), reason: reason)
        nextSequence = first.sequence
        drain(into: &sink)
        checkFinished(into: &sink)
    }

    /// Drops buffered data (memory pressure) and continues after it.
    mutating func discardBuffered<Sink: StreamSink>(reason: GiveUpReason, into sink: inout Sink) {
        guard let last = buffered.last, let next = nextSequence else { return }
        let end = last.sequence &+ UInt32(truncatingIfNeeded: last.bytes.count)
        sink.gap(lostBytes: max(0, Self.distance(end, next)), reason: reason)
        nextSequence = end
        buffered.removeAll()
        bufferedBytes = 0
        gapOpenedAt = nil
    }

    private mutating func accept<Sink: StreamSink>(
        _ sequence: UInt32, _ payload: UnsafeRawBufferPointer, mark: StreamMark, into sink: inout Sink
    ) {
        guard let next = nextSequence else { return }
        let offset = Self.distance(sequence, next)
        if offset + payload.count <= 0 {
            retransmittedBytes += payload.count
            return
        }
        if offset <= 0 {
            let skip = -offset
            retransmittedBytes += skip
            var trimmed = mark
            trimmed.sequence = next
            sink.deliver(UnsafeRawBufferPointer(rebasing: payload[skip...]), mark: trimmed)
            nextSequence = next &+ UInt32(truncatingIfNeeded: payload.count - skip)
            drain(into: &sink)
            return
        }
        outOfOrderSegments += 1
        if gapOpenedAt == nil { gapOpenedAt = mark.timestamp }
        insert(BufferedSegment(sequence: sequence, bytes: Array(payload), mark: mark))
        while bufferedBytes > maxBufferedBytes, !buffered.isEmpty {
            resolveGap(reason: .reorderBufferFull, into: &sink)
        }
    }

    private mutating func insert(_ segment: BufferedSegment) {
        var index = buffered.count
        while index > 0, Self.distance(buffered[index - 1].sequence, segment.sequence) > 0 { index -= 1 }
        // An identical retransmission of a buffered segment adds nothing.
        if index > 0, buffered[index - 1].sequence == segment.sequence,
            buffered[index - 1].bytes.count >= segment.bytes.count
        {
            retransmittedBytes += segment.bytes.count
            return
        }
        buffered.insert(segment, at: index)
        bufferedBytes += segment.bytes.count
    }

    /// Delivers buffered segments that have become contiguous.
    private mutating func drain<Sink: StreamSink>(into sink: inout Sink) {
        while let first = buffered.first, let next = nextSequence {
            let offset = Self.distance(first.sequence, next)
            if offset > 0 { break }
            buffered.removeFirst()
            bufferedBytes -= first.bytes.count
            let skip = -offset
            if skip >= first.bytes.count {
                retransmittedBytes += first.bytes.count
                continue
            }
            retransmittedBytes += skip
            var mark = first.mark
            mark.sequence = next
            first.bytes.withUnsafeBytes { raw in
                sink.deliver(UnsafeRawBufferPointer(rebasing: raw[skip...]), mark: mark)
            }
            nextSequence = next &+ UInt32(truncatingIfNeeded: first.bytes.count - skip)
        }
        gapOpenedAt = buffered.isEmpty ? nil : (gapOpenedAt ?? buffered.first?.mark.timestamp)
    }

    private mutating func checkFinished<Sink: StreamSink>(into sink: inout Sink) {
        guard !ended, let fin = finSequence, let next = nextSequence, Self.distance(next, fin) >= 0 else { return }
        ended = true
        // Segments buffered beyond the FIN can never be delivered; kept, a later gap resolution
        // delivered them after the end (found by fuzzing).
        buffered.removeAll()
        bufferedBytes = 0
        gapOpenedAt = nil
        sink.end(reset: false)
    }
}
