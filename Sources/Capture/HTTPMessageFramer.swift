import Replay

/// Where a run of stream bytes came from, so framed messages can carry
/// GoReplay's timestamps and ids.
public struct StreamMark: Sendable, Hashable {
    /// Capture time of the segment, nanoseconds since the Unix epoch.
    public var timestamp: Int64
    /// TCP sequence number of the run's first byte.
    public var sequence: UInt32
    /// The segment's acknowledgement number.
    public var acknowledgement: UInt32

    public init(timestamp: Int64, sequence: UInt32, acknowledgement: UInt32) {
        self.timestamp = timestamp
        self.sequence = sequence
        self.acknowledgement = acknowledgement
    }
}

/// A request whose response has not been framed yet: a response framer needs
/// the method (HEAD and CONNECT change how a response ends) and pairs the
/// response with the request's id.
public struct ExpectedResponse: Sendable, Hashable {
    public var method: String
    public var id: String

    public init(method: String, id: String) {
        self.method = method
        self.id = id
    }
}

/// A complete (or, on expiry with allow-incomplete, partial) HTTP message.
public struct FramedMessage: Sendable, Hashable {
    /// The raw message bytes exactly as they were on the stream.
    public var bytes: [UInt8]
    /// Mark of the message's first byte (its sequence number is exact).
    public var first: StreamMark
    /// Capture time of the last segment that contributed bytes.
    public var lastTimestamp: Int64
    /// Request method; nil for responses.
    public var method: String?
    /// Response status; nil for requests.
    public var status: Int?
    /// The request a response answers, when known.
    public var request: ExpectedResponse?
    /// Length of the start line including its CRLF.
    public var startLineLength: Int
    /// Byte range of an `Expect: 100-continue` header line, CRLF included.
    public var expectContinueLine: Range<Int>?
    /// False only when emitted on expiry with allow-incomplete.
    public var isComplete: Bool
}

/// What the framer reports while consuming a stream.
public enum FramerEvent: Sendable, Hashable {
    /// A request's header block was parsed (before its body arrives): the
    /// moment to queue it for response pairing.
    case requestHead(method: String, first: StreamMark)
    /// A complete message.
    case message(FramedMessage)
    /// An interim (1xx) response was framed and skipped.
    case interimResponse(status: Int)
    /// A message was given up; `bytes` were already buffered for it.
    case gaveUp(GiveUpReason, bytes: Int)
    /// Bytes thrown away outside any message (resynchronising, or the rest
    /// of a message already given up).
    case skipped(bytes: Int)
}

/// Splits one direction of a reassembled TCP stream into HTTP/1.x messages.
///
/// Fed runs of bytes in stream order, it buffers only the message in
/// progress and reports boundaries as they are found, so it works the same
/// whether a message arrives in one segment or a thousand, and whether one
/// segment holds one message or several (pipelining).
///
/// Heads and chunked bodies are read by `Replay`'s HTTP/1 core (`HTTP1Head`,
/// `HTTP1HeadScanner`, `ChunkedBodyDecoder`); this type adds what capture
/// needs around it: sequence gaps, resynchronisation, limits and pairing.
public struct HTTPMessageFramer: Sendable {
    public typealias Role = HTTP1Role

    /// Limits that bound the framer's memory.
    public struct Limits: Sendable {
        /// Largest header block (start line and headers).
        public var maxHeaderBytes: Int
        /// Largest whole message kept; larger ones are given up but framing
        /// continues past them.
        public var maxMessageBytes: Int
        /// Most requests kept waiting for their responses.
        public var maxPendingRequests: Int

        public init(
            maxHeaderBytes: Int = 64 * 1024, maxMessageBytes: Int = 64 * 1024 * 1024, maxPendingRequests: Int = 1024
        ) {
            self.maxHeaderBytes = maxHeaderBytes
            self.maxMessageBytes = maxMessageBytes
            self.maxPendingRequests = maxPendingRequests
        }
    }

    private enum State: Sendable {
        /// Looking for a plausible start line at the start of a run.
        case resync
        /// In or before a header block.
        case head
        case fixedBody(remaining: Int)
        case chunked
        /// A response delimited by the connection closing.
        case untilClose
        /// After a protocol switch (101, CONNECT): the rest is not HTTP.
        case opaque
    }

    public let role: Role
    public let limits: Limits
    private var state: State
    private var buffer: [UInt8] = []
    private var inMessage = false
    /// Still consuming a given-up message's framed bytes, without keeping them.
    private var discarding = false
    private var first = StreamMark(timestamp: 0, sequence: 0, acknowledgement: 0)
    private var lastTimestamp: Int64 = 0
    private var headScanner = HTTP1HeadScanner()
    private var firstLineLength: Int? = nil
    private var parsedMethod: String? = nil
    private var parsedStatus: Int? = nil
    private var pairedRequest: ExpectedResponse? = nil
    private var expectLine: Range<Int>? = nil
    private var afterMessage: State? = nil
    private var chunks = ChunkedBodyDecoder()
    private var pending: [ExpectedResponse] = []
    private var pendingStart = 0

    /// `synchronized` is false for a stream first seen mid-way: the framer
    /// then waits for a run that starts with a plausible start line.
    public init(role: Role, synchronized: Bool = true, limits: Limits = Limits()) {
        self.role = role
        self.limits = limits
        self.state = synchronized ? .head : .resync
    }

    /// Bytes currently buffered (for memory accounting).
    public var bufferedBytes: Int { buffer.count }

    /// True while a message has started but not ended.
    public var hasMessageInProgress: Bool { inMessage }

    /// Queues a request whose response this (response) framer will frame next.
    public mutating func expectResponse(_ request: ExpectedResponse) {
        if pending.count - pendingStart >= limits.maxPendingRequests { pendingStart += 1 }
        pending.append(request)
        if pendingStart > 64 && pendingStart * 2 > pending.count {
            pending.removeFirst(pendingStart)
            pendingStart = 0
        }
    }

    private mutating func popExpected() -> ExpectedResponse? {
        guard pendingStart < pending.count else { return nil }
        let next = pending[pendingStart]
        pendingStart += 1
        if pendingStart == pending.count {
            pending.removeAll(keepingCapacity: true)
            pendingStart = 0
        }
        return next
    }

    /// Consumes the next run of stream bytes. A run normally is one TCP
    /// segment's new payload; its start is a candidate message start when
    /// resynchronising.
    public mutating func consume(_ bytes: UnsafeRawBufferPointer, mark: StreamMark, into events: inout [FramerEvent]) {
        var index = 0
        let count = bytes.count
        if inMessage { lastTimestamp = mark.timestamp }
        while index < count {
            switch state {
            case .opaque:
                events.append(.skipped(bytes: count - index))
                return
            case .resync:
                if index == 0, HTTP1StartLine.check(bytes, role: role) != .invalid {
                    state = .head
                    continue
                }
                events.append(.skipped(bytes: count - index))
                return
            case .head:
                if !inMessage {
                    beginMessage(mark: mark, offset: index)
                }
                index = scanHead(bytes, from: index, into: &events)
            case .fixedBody(let remaining):
                let take = min(remaining, count - index)
                takeBody(bytes, index, take, into: &events)
                index += take
                if remaining - take == 0 {
                    completeMessage(into: &events)
                } else if case .fixedBody = state {
                    state = .fixedBody(remaining: remaining - take)
                }
            case .chunked:
                index = consumeChunked(bytes, from: index, into: &events)
            case .untilClose:
                takeBody(bytes, index, count - index, into: &events)
                index = count
            }
        }
    }

    /// Reports that `lostBytes` of the stream (nil: an unknown amount) will
    /// never arrive. The message in progress is given up; framing stays in
    /// step when the loss lies inside a body of known length.
    public mutating func gap(lostBytes: Int?, into events: inout [FramerEvent]) {
        switch state {
        case .fixedBody(let remaining) where lostBytes.map({ $0 <= remaining }) ?? false:
            abandon(.sequenceGap, into: &events)
            let left = remaining - (lostBytes ?? 0)
            if left == 0 { completeMessage(into: &events) } else { state = .fixedBody(remaining: left) }
        case .chunked where lostBytes.map({ $0 <= chunks.dataRemaining }) ?? false:
            abandon(.sequenceGap, into: &events)
            _ = chunks.skipData(lostBytes ?? 0)
        case .untilClose:
            abandon(.sequenceGap, into: &events)
        case .opaque:
            break
        default:
            if inMessage { abandon(.sequenceGap, into: &events) }
            endMessage()
            state = .resync
        }
    }

    /// The stream ended: with a FIN (`reset` false) a close-delimited
    /// response is complete; anything else unfinished is given up.
    public mutating func finish(reset: Bool, into events: inout [FramerEvent]) {
        if case .untilClose = state, inMessage, !reset {
            completeMessage(into: &events)
        } else if inMessage {
            abandon(reset ? .connectionReset : .closedMidMessage, into: &events)
            endMessage()
        }
        state = .resync
    }

    /// The stream has been idle too long (or the input ended): the message in
    /// progress is emitted incomplete when `allowIncomplete`, else given up.
    public mutating func expire(
        allowIncomplete: Bool, reason: GiveUpReason = .expiredIncomplete, into events: inout [FramerEvent]
    ) {
        guard inMessage else { return }
        if allowIncomplete, !discarding, !buffer.isEmpty {
            events.append(.message(makeMessage(complete: false)))
        } else {
            abandon(reason, into: &events)
        }
        endMessage()
        state = .resync
    }

    // MARK: - Message bookkeeping

    private mutating func beginMessage(mark: StreamMark, offset: Int) {
        inMessage = true
        first = StreamMark(
            timestamp: mark.timestamp, sequence: mark.sequence &+ UInt32(truncatingIfNeeded: offset),
            acknowledgement: mark.acknowledgement)
        lastTimestamp = mark.timestamp
        headScanner.reset()
        firstLineLength = nil
        parsedMethod = nil
        parsedStatus = nil
        pairedRequest = nil
        expectLine = nil
        afterMessage = nil
    }

    private mutating func abandon(_ reason: GiveUpReason, into events: inout [FramerEvent]) {
        if !discarding {
            events.append(.gaveUp(reason, bytes: buffer.count))
        }
        discarding = true
        buffer = []
    }

    private mutating func endMessage() {
        inMessage = false
        discarding = false
        buffer = []
    }

    private func makeMessage(complete: Bool) -> FramedMessage {
        FramedMessage(
            bytes: buffer, first: first, lastTimestamp: lastTimestamp,
            method: parsedMethod, status: parsedStatus, request: pairedRequest,
            startLineLength: firstLineLength ?? 0, expectContinueLine: expectLine,
            isComplete: complete)
    }

    private mutating func completeMessage(into events: inout [FramerEvent]) {
        if !discarding {
            if let status = parsedStatus, status < 200 {
                events.append(.interimResponse(status: status))
            } else {
                events.append(.message(makeMessage(complete: true)))
            }
        }
        endMessage()
        state = afterMessage ?? .head
    }

    private mutating func takeBody(
        _ bytes: UnsafeRawBufferPointer, _ start: Int, _ length: Int, into events: inout [FramerEvent]
    ) {
        guard length > 0 else { return }
        if discarding {
            events.append(.skipped(bytes: length))
            return
        }
        buffer.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[start..<(start + length)]))
        if buffer.count > limits.maxMessageBytes {
            abandon(.messageTooLarge, into: &events)
        }
    }

    // MARK: - Head

    /// Scans for the end of the header block; returns the new index.
    private mutating func scanHead(_ bytes: UnsafeRawBufferPointer, from start: Int, into events: inout [FramerEvent])
        -> Int
    {
        let count = bytes.count
        let (index, found) = headScanner.scan(bytes, from: start)
        firstLineLength = headScanner.startLineLength
        buffer.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[start..<index]))
        // Reject garbage early instead of waiting for a full header block.
        let lineSoFar = firstLineLength ?? buffer.count
        let lineCheck = HTTP1StartLine.check(buffer[0..<lineSoFar], role: role)
        if lineCheck == .invalid {
            abandon(.notHTTP, into: &events)
            endMessage()
            state = .resync
            if index < count { events.append(.skipped(bytes: count - index)) }
            return count
        }
        if found {
            parseHead(into: &events)
        } else if buffer.count > limits.maxHeaderBytes {
            abandon(.headerTooLarge, into: &events)
            endMessage()
            state = .resync
            if index < count { events.append(.skipped(bytes: count - index)) }
            return count
        }
        return index
    }

    private mutating func parseHead(into events: inout [FramerEvent]) {
        let head: HTTP1Head
        do {
            head = try HTTP1Head(parsing: buffer, role: role)
        } catch {
            giveUpHead(error, into: &events)
            return
        }
        firstLineLength = head.startLineLength
        expectLine = head.expectContinueLine
        let framing: HTTP1BodyFraming
        switch role {
        case .request:
            parsedMethod = head.method
            events.append(.requestHead(method: head.method ?? "", first: first))
            do {
                framing = try head.bodyFraming()
            } catch {
                giveUpHead(error, into: &events)
                return
            }
        case .response:
            let status = head.status ?? 0
            parsedStatus = status
            var method: String?
            if status >= 200 {
                pairedRequest = popExpected()
                method = pairedRequest?.method
            }
            if status == 101 || (method == "CONNECT" && status >= 200 && status < 300) { afterMessage = .opaque }
            framing = (try? head.bodyFraming(requestMethod: method)) ?? .untilClose // responses always frame
        }
        switch framing {
        case .none: startFixed(0, into: &events)
        case .fixed(let length): startFixed(length, into: &events)
        case .chunked: startChunked()
        case .untilClose: state = .untilClose
        }
    }

    /// A head that is not HTTP, or whose body cannot be delimited.
    private mutating func giveUpHead(_ error: HTTP1HeadError, into events: inout [FramerEvent]) {
        abandon(error.isFramingError ? .badFraming : .notHTTP, into: &events)
        endMessage()
        state = .resync
    }

    private mutating func startFixed(_ length: Int, into events: inout [FramerEvent]) {
        if length == 0 {
            completeMessage(into: &events)
        } else {
            state = .fixedBody(remaining: length)
            if buffer.count + length > limits.maxMessageBytes {
                abandon(.messageTooLarge, into: &events)
            }
        }
    }

    private mutating func startChunked() {
        state = .chunked
        chunks = ChunkedBodyDecoder(maxTrailerBytes: limits.maxHeaderBytes)
    }

    // MARK: - Chunked bodies

    private mutating func consumeChunked(
        _ bytes: UnsafeRawBufferPointer, from start: Int, into events: inout [FramerEvent]
    ) -> Int {
        var index = start
        do {
            try chunks.consume(bytes, at: &index)
        } catch {
            return failChunked(bytes, index, unflushed: index - start, into: &events)
        }
        takeBody(bytes, start, index - start, into: &events)
        if chunks.isComplete, inMessage { completeMessage(into: &events) }
        return index
    }

    private mutating func failChunked(
        _ bytes: UnsafeRawBufferPointer, _ index: Int, unflushed: Int, into events: inout [FramerEvent]
    ) -> Int {
        if discarding {
            events.append(.skipped(bytes: unflushed + bytes.count - index))
        } else {
            events.append(.gaveUp(.badFraming, bytes: buffer.count + unflushed))
            if index < bytes.count { events.append(.skipped(bytes: bytes.count - index)) }
        }
        endMessage()
        state = .resync
        return bytes.count
    }
}
