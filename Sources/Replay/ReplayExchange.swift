/// Response counts a connection gathers before adding them to the shared
/// statistics (one lock per batch rather than per response). Latencies are
/// kept with their histogram bucket, worked out here, and added to the
/// shared histogram under that lock: a histogram per connection was 9.6 KB
/// each to zero and merge, and cache misses.
struct ResponseBatch {
    static let capacity = 64
    var responses = 0
    var statusCodes: [Int: Int] = [:]
    private(set) var latencies: [(nanoseconds: Int64, bucket: Int)] = []
    /// The status of the previous response and how many in a row had it:
    /// most replays see one status, so the dictionary is touched per run.
    private var lastStatus = 0
    private var lastStatusRun = 0

    init() { latencies.reserveCapacity(Self.capacity) }

    var isFull: Bool { responses >= Self.capacity }

    mutating func record(status: Int, latency nanoseconds: Int64) {
        responses += 1
        latencies.append((nanoseconds, LatencyHistogram.bucket(of: nanoseconds)))
        if status != lastStatus {
            settleStatusRun()
            lastStatus = status
        }
        lastStatusRun += 1
    }

    /// Moves the current run of one status into `statusCodes`.
    mutating func settleStatusRun() {
        if lastStatusRun > 0 { statusCodes[lastStatus, default: 0] += lastStatusRun }
        lastStatusRun = 0
    }

    /// Empties the batch, keeping its storage.
    mutating func removeAll() {
        responses = 0
        statusCodes.removeAll(keepingCapacity: true)
        latencies.removeAll(keepingCapacity: true)
        lastStatusRun = 0
    }
}

/// What both kinds of pooled connection (`PlainHTTPConnection` on a socket loop,
/// `HTTPReplayConnection` in a NIO channel) keep and decide alike: the request in flight, its
/// response's framing, timing and counts, and how the pool hears of each step. The connection does
/// the I/O and acts on what these methods return, so the replay rules live in one place.
struct ReplayExchange {
    /// What the connection does once a response is complete.
    enum AfterResponse {
        /// Send the pool's next request on this connection.
        case send(PendingRequest)
        /// Nothing waits: the connection is back in the pool, idle.
        case idle
        /// The response ends the connection: close it.
        case close
    }

    /// Where a response stands after some of its bytes.
    enum ResponseProgress {
        case incomplete
        case complete
        /// Not an HTTP response: counted as failed; the connection closes.
        case unreadable
    }

    let output: HTTPOutput
    /// The pool's key for the connection; set by the connection once it exists.
    var connectionID: ObjectIdentifier?
    private(set) var current: PendingRequest?
    /// True once the pool has heard that this connection ended.
    private(set) var ended = false
    /// When the request in flight times out (monotonic ns).
    private(set) var deadline: Int64 = .max
    private var framer: HTTPResponseFramer
    private var sentAt: Int64 = 0
    private var sentAtWall: Int64 = 0
    private let timeoutNanoseconds: Int64
    private let trackResponses: Bool
    /// True from `start` until the pool takes this connection back as idle.
    private var holdsSlot = false
    private var batch = ResponseBatch()
    private var lastBatchFlush: Int64 = 0
    /// Responses completed here: a closed connection that had served one is a stale keep-alive,
    /// not a dead target.
    private var served = 0
    /// Bytes of the current response seen so far.
    private var receivedAny = false
    /// Why the transport failed (TLS, reset), for the failure count; the first reason is kept.
    private var failureReason: String?

    init(output: HTTPOutput) {
        self.output = output
        self.timeoutNanoseconds = output.options.timeout.nanoseconds
        self.trackResponses = output.options.trackResponses
        self.framer = HTTPResponseFramer(
            keepsRaw: output.options.trackResponses, rawLimit: output.options.responseBufferSize)
    }

    /// Takes `request` for the connection to write. When the connection is closed (`isOpen`
    /// false, or it has ended) the request goes back to the front of the pool's queue instead,
    /// and false is returned.
    mutating func start(_ request: PendingRequest, isOpen: Bool, now: Int64) -> Bool {
        holdsSlot = true
        guard isOpen, !ended else {
            // Closed while idle: let the pool start a fresh connection for it.
            output.requeue(request)
            if ended {
                holdsSlot = false
                output.releaseSlot()
            } else {
                end()
            }
            return false
        }
        current = request
        receivedAny = false
        framer.reset(requestMethodIsHead: request.isHead)
        sentAt = now
        if trackResponses { sentAtWall = wallNanoseconds() }
        deadline = now + timeoutNanoseconds
        return true
    }

    /// Frames response bytes. Bytes with no request waiting (after a timeout) are dropped.
    mutating func receive(_ bytes: UnsafeRawBufferPointer) -> ResponseProgress {
        guard current != nil else { return .incomplete }
        receivedAny = true
        do {
            return try framer.feed(bytes) ? .complete : .incomplete
        } catch {
            current = nil
            output.recordFailure(timeout: false, reason: "unreadable response: \(error)")
            return .unreadable
        }
    }

    /// Counts the complete response (and hands it on when tracking responses), then takes the
    /// pool's next request for `connection` unless the response, or `mustClose`, ends it.
    mutating func finishResponse(
        of connection: ReplayConnectionHandle?, mustClose: Bool = false, now: Int64 = monotonicNanoseconds()
    ) -> AfterResponse {
        var taken: PendingRequest?
        swap(&taken, &current) // a move: no retain of its buffers
        guard let request = taken else { return .idle }
        served += 1
        let latency = now - sentAt
        batch.record(status: framer.statusCode, latency: latency)
        if batch.isFull || now - lastBatchFlush > 100_000_000 { flushBatch(now: now) }
        if trackResponses, let sink = output.responseSink {
            sink(
                ReplayMessage(
                    type: .replayedResponse, id: request.id, timestamp: sentAtWall, latency: latency,
                    payload: framer.raw))
        }
        if framer.closesConnection || mustClose { return .close }
        if let connection, let next = output.nextRequest(after: connection) { return .send(next) }
        holdsSlot = false
        return .idle
    }

    /// True when a request waits past its deadline: it is counted as a timeout, and the
    /// connection must close.
    mutating func timeOut(now: Int64) -> Bool {
        guard current != nil, now >= deadline else { return false }
        current = nil
        output.recordFailure(timeout: true, reason: "no response within --output-http-timeout")
        return true
    }

    /// Keeps the first reason the transport gives for failing.
    mutating func noteFailure(_ reason: String) {
        if failureReason == nil { failureReason = reason }
    }

    /// The connection has closed: the request in flight is settled (a close-delimited response
    /// completes; an idempotent request met by a stale keep-alive is sent once more on a fresh
    /// connection, as Go's client does; anything else fails with its reason), the counts are added
    /// and the pool hears of the end, once.
    mutating func closed(_ connection: ReplayConnectionHandle?, now: Int64 = monotonicNanoseconds()) {
        if let request = current {
            if framer.isCloseDelimited {
                if case .send(let next) = finishResponse(of: connection, now: now) {
                    _ = start(next, isOpen: false, now: now)
                }
            } else if served > 0, !receivedAny, request.isIdempotent, !request.retried, !output.isClosing {
                // The server closed this keep-alive connection as we reused it (idle timeout,
                // request limit).
                current = nil
                holdsSlot = false
                output.retry(request)
                output.releaseSlotWithoutStarting()
            } else {
                current = nil
                let reason =
                    failureReason
                    ?? (receivedAny ? "connection closed mid-response" : "connection closed before a response")
                output.recordFailure(timeout: false, reason: reason)
            }
        }
        flushBatch(now: now)
        end()
    }

    private mutating func flushBatch(now: Int64) {
        batch.settleStatusRun()
        output.recordResponses(batch)
        batch.removeAll()
        lastBatchFlush = now
    }

    /// Tells the pool this connection ended, once; `connectionEnded` frees its slot and starts a
    /// replacement for waiting requests.
    private mutating func end() {
        guard !ended else { return }
        ended = true
        let hadRequest = holdsSlot
        holdsSlot = false
        output.connectionEnded(connectionID, hadRequest: hadRequest)
    }
}
