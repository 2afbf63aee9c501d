import NIOConcurrencyHelpers
import Prometheus
import Replay

/// The mirror's live figures in Prometheus form, for `--metrics ADDR`.
///
/// Two sources feed it. Counters the pipeline already keeps (requests read,
/// dropped, failed; queue depth) are copied from `ReplayStatistics`
/// at each scrape, as increments since the last one, so they stay
/// monotonic. Responses are observed as they pass (`observe`): their status
/// class and latency per side, and a mismatch when a replayed status
/// differs from the original one of the same id, joined in a bounded table.
public final class MirrorMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    let statistics: ReplayStatistics

    private let captured: Counter
    private let replayed: Counter
    private let droppedQueueFull: Counter
    private let droppedRateLimit: Counter
    private let droppedFiltered: Counter
    private let droppedMiddleware: Counter
    private let middlewareWritten: Counter
    private let middlewareReturned: Counter
    private let failedConnection: Counter
    private let failedTimeout: Counter
    private let mismatches: Counter
    private let unmatched: Counter
    private let responses: [String: (original: Counter, replayed: Counter)]
    private let originalLatency: DurationHistogram
    private let replayedLatency: DurationHistogram
    private let queueDepth: Gauge

    /// What was copied at the last scrape.
    private struct Copied {
        var requestsRead = 0
        var queueFull = 0
        var rateLimited = 0
        var filtered = 0
        var middleware = 0
        var middlewareWritten = 0
        var middlewareReturned = 0
        var failed = 0
        var timeouts = 0
    }

    /// Per id: the request's timestamp and the original status, until the
    /// replayed response arrives; oldest first for eviction.
    private struct Join {
        struct Entry {
            var requestTimestamp: Int64?
            var originalStatus: Int?
        }
        var entries: [String: Entry] = [:]
        var order: [String] = []
        var head = 0
    }

    /// Ids kept waiting at most; the oldest beyond it is forgotten
    /// (counted in `goreplay_join_evicted_total`).
    public let joinWindow: Int
    private let copied = NIOLockedValueBox(Copied())
    private let join = NIOLockedValueBox(Join())

    static let latencyBuckets: [Duration] = [
        .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
        .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5),
        .seconds(10),
    ]

    public init(statistics: ReplayStatistics, joinWindow: Int = 65_536) {
        self.statistics = statistics
        self.joinWindow = joinWindow
        let registry = PrometheusCollectorRegistry()
        self.registry = registry
        captured = registry.makeCounter(
            descriptor: Self.described(
                "goreplay_requests_captured_total", "Requests read from the inputs (capture or file)."))
        replayed = registry.makeCounter(
            descriptor: Self.described(
                "goreplay_requests_replayed_total", "Requests replayed to an HTTP target that answered or failed."))
        let dropped = "goreplay_requests_dropped_total"
        let droppedHelp = "Requests not replayed, by reason."
        droppedQueueFull = registry.makeCounter(
            descriptor: Self.described(dropped, droppedHelp), labels: [("reason", "queue_full")])
        droppedRateLimit = registry.makeCounter(
            descriptor: Self.described(dropped, droppedHelp), labels: [("reason", "rate_limit")])
        droppedFiltered = registry.makeCounter(
            descriptor: Self.described(dropped, droppedHelp), labels: [("reason", "filtered")])
        droppedMiddleware = registry.makeCounter(
            descriptor: Self.described(dropped, droppedHelp), labels: [("reason", "middleware")])
        // A middleware that filters simply does not return a message: written − returned.
        let middleware = "goreplay_middleware_messages_total"
        let middlewareHelp = "Messages written to --middleware and returned by it."
        middlewareWritten = registry.makeCounter(
            descriptor: Self.described(middleware, middlewareHelp), labels: [("direction", "written")])
        middlewareReturned = registry.makeCounter(
            descriptor: Self.described(middleware, middlewareHelp), labels: [("direction", "returned")])
        let failed = "goreplay_replay_failures_total"
        let failedHelp = "Replayed requests that got no response, by cause."
        failedConnection = registry.makeCounter(
            descriptor: Self.described(failed, failedHelp), labels: [("cause", "connection")])
        failedTimeout = registry.makeCounter(
            descriptor: Self.described(failed, failedHelp), labels: [("cause", "timeout")])
        mismatches = registry.makeCounter(
            descriptor: Self.described(
                "goreplay_status_mismatches_total",
                "Replayed responses whose status differs from the original response's."))
        unmatched = registry.makeCounter(
            descriptor: Self.described(
                "goreplay_join_evicted_total",
                "Requests forgotten before their replayed response arrived (none came, or too late)."))
        var responses: [String: (Counter, Counter)] = [:]
        for statusClass in ["1xx", "2xx", "3xx", "4xx", "5xx", "unreadable"] {
            let name = "goreplay_responses_total"
            let help =
                "Responses by side (original: recorded from production; replayed: from the target) and status class."
            responses[statusClass] = (
                registry.makeCounter(
                    descriptor: Self.described(name, help), labels: [("side", "original"), ("class", statusClass)]),
                registry.makeCounter(
                    descriptor: Self.described(name, help), labels: [("side", "replayed"), ("class", statusClass)])
            )
        }
        self.responses = responses
        let latency = "goreplay_response_latency_seconds"
        let latencyHelp = "Response latency by side, as recorded in the response's meta line."
        originalLatency = registry.makeDurationHistogram(
            descriptor: Self.described(latency, latencyHelp), labels: [("side", "original")],
            buckets: Self.latencyBuckets)
        replayedLatency = registry.makeDurationHistogram(
            descriptor: Self.described(latency, latencyHelp), labels: [("side", "replayed")],
            buckets: Self.latencyBuckets)
        queueDepth = registry.makeGauge(
            descriptor: Self.described("goreplay_queue_depth", "Requests waiting in the outputs' queues."))
    }

    /// Notes a request's timestamp (type 1), counts an original (type 2) or
    /// replayed (type 3) response. Requests themselves are counted from the
    /// statistics.
    public func observe(_ message: ReplayMessage) {
        switch message.type {
        case .request:
            update(message.id) { $0.requestTimestamp = message.timestamp }
        case .response:
            let status = Self.statusCode(message.payload)
            counters(status).original.increment()
            var requestTimestamp: Int64?
            update(message.id) { entry in
                requestTimestamp = entry.requestTimestamp
                entry.originalStatus = status
            }
            if let latency = Self.originalLatency(message, requestTimestamp: requestTimestamp) {
                originalLatency.record(latency)
            }
        case .replayedResponse:
            let status = Self.statusCode(message.payload)
            counters(status).replayed.increment()
            replayed.increment()
            if let latency = message.latency, latency >= 0 { replayedLatency.record(.nanoseconds(latency)) }
            let original = join.withLockedValue { $0.entries.removeValue(forKey: message.id) }?.originalStatus
            if let original, let status, original != status { mismatches.increment() }
        }
    }

    private func counters(_ status: Int?) -> (original: Counter, replayed: Counter) {
        responses[status.map { "\($0 / 100)xx" } ?? "unreadable"] ?? responses["unreadable"]!
    }

    /// Request start to response end: GoReplay 1.3+ stamps a response with
    /// its own first packet and gives its transfer time, 0.16 stamps it with
    /// the request's start and gives the whole time; both come to
    /// (response stamp − request stamp) + latency.
    static func originalLatency(_ response: ReplayMessage, requestTimestamp: Int64?) -> Duration? {
        guard let latency = response.latency, latency >= 0 else { return nil }
        guard let requestTimestamp else { return .nanoseconds(latency) }
        let gap = response.timestamp - requestTimestamp
        return .nanoseconds(gap >= 0 && gap < 3_600_000_000_000 ? gap + latency : latency)
    }

    private func update(_ id: String, _ body: (inout Join.Entry) -> Void) {
        let evicted = join.withLockedValue { join -> Int in
            if var entry = join.entries[id] {
                body(&entry)
                join.entries[id] = entry
                return 0
            }
            var entry = Join.Entry()
            body(&entry)
            join.entries[id] = entry
            join.order.append(id)
            var evicted = 0
            while join.entries.count > joinWindow, join.head < join.order.count {
                if join.entries.removeValue(forKey: join.order[join.head]) != nil { evicted += 1 }
                join.head += 1
            }
            // Settled ids stay in `order` until here: keep it proportional to the window.
            if (join.head > 4096 && join.head > join.order.count / 2)
                || join.order.count - join.head > 2 * joinWindow + 1024
            {
                join.order = join.order[join.head...].filter { join.entries[$0] != nil }
                join.head = 0
            }
            return evicted
        }
        if evicted > 0 { unmatched.increment(by: Int64(evicted)) }
    }

    /// Copies the pipeline's counters, then renders the text exposition.
    public func exposition() -> [UInt8] {
        let pipeline = statistics.pipelineSnapshot
        let outputs = statistics.outputSnapshot
        var now = Copied()
        now.requestsRead = pipeline.requestsRead
        now.filtered = pipeline.filtered
        now.rateLimited = pipeline.inputRateLimited
        if let middleware = pipeline.middleware {
            // Lost on the way: its queue was full, or it wrote lines that were not records.
            now.middleware = middleware.droppedQueueFull + middleware.invalidLines + middleware.oversizedLines
            now.middlewareWritten = middleware.written
            now.middlewareReturned = middleware.returned
        }
        var depth = 0
        for output in outputs {
            now.queueFull += output.droppedQueueFull
            now.rateLimited += output.droppedRateLimit
            now.failed += output.failed
            now.timeouts += output.timeouts
            depth += output.queueLength
        }
        let before = copied.withLockedValue { copied in
            defer { copied = now }
            return copied
        }
        func add(_ counter: Counter, _ value: Int, _ previous: Int) {
            if value > previous { counter.increment(by: Int64(value - previous)) }
        }
        add(captured, now.requestsRead, before.requestsRead)
        // Answered ones were counted as observed; the statistics' `sent` lags
        // (outputs batch it), failures do not.
        add(replayed, now.failed, before.failed)
        add(droppedQueueFull, now.queueFull, before.queueFull)
        add(droppedRateLimit, now.rateLimited, before.rateLimited)
        add(droppedFiltered, now.filtered, before.filtered)
        add(droppedMiddleware, now.middleware, before.middleware)
        add(middlewareWritten, now.middlewareWritten, before.middlewareWritten)
        add(middlewareReturned, now.middlewareReturned, before.middlewareReturned)
        add(failedTimeout, now.timeouts, before.timeouts)
        add(failedConnection, now.failed - now.timeouts, before.failed - before.timeouts)
        queueDepth.set(Double(depth))
        return registry.emitToBuffer()
    }

    /// A metric by its full name: the unit is already its suffix (`_total`, `_seconds`), and empty
    /// name components are left out of the exposed name.
    static func described(_ name: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
    }

    /// `HTTP/1.1 503 …` → 503.
    static func statusCode(_ payload: [UInt8]) -> Int? {
        guard payload.count >= 12, payload.starts(with: Array("HTTP/".utf8)), payload[8] == 0x20 else { return nil }
        var code = 0
        for byte in payload[9..<12] {
            guard byte >= 0x30 && byte <= 0x39 else { return nil }
            code = code * 10 + Int(byte - 0x30)
        }
        return (100...599).contains(code) ? code : nil
    }
}
