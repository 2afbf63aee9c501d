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

    /// Original statuses waiting for their replayed response, oldest first.
    private struct Join {
        var statuses: [String: Int] = [:]
        var order: [String] = []
        var head = 0
    }

    /// Originals kept waiting at most; the oldest beyond it is forgotten
    /// (counted in `goreplay_join_evicted_total`).
    public let joinWindow: Int
    private let copied = NIOLockedValueBox(Copied())
    private let join = NIOLockedValueBox(Join())

    static let latencyBuckets: [Duration] = [
        .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
        .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10),
    ]

    public init(statistics: ReplayStatistics, joinWindow: Int = 65_536) {
        self.statistics = statistics
        self.joinWindow = joinWindow
        let registry = PrometheusCollectorRegistry()
        self.registry = registry
        captured = registry.makeCounter(name: "goreplay_requests_captured_total", help: "Requests read from the inputs (capture or file).")
        replayed = registry.makeCounter(
            name: "goreplay_requests_replayed_total", help: "Requests replayed to an HTTP target that answered or failed.")
        let dropped = "goreplay_requests_dropped_total"
        let droppedHelp = "Requests not replayed, by reason."
        droppedQueueFull = registry.makeCounter(name: dropped, labels: [("reason", "queue_full")], help: droppedHelp)
        droppedRateLimit = registry.makeCounter(name: dropped, labels: [("reason", "rate_limit")], help: droppedHelp)
        droppedFiltered = registry.makeCounter(name: dropped, labels: [("reason", "filtered")], help: droppedHelp)
        droppedMiddleware = registry.makeCounter(name: dropped, labels: [("reason", "middleware")], help: droppedHelp)
        // A middleware that filters simply does not return a message: written − returned.
        let middleware = "goreplay_middleware_messages_total"
        let middlewareHelp = "Messages written to --middleware and returned by it."
        middlewareWritten = registry.makeCounter(name: middleware, labels: [("direction", "written")], help: middlewareHelp)
        middlewareReturned = registry.makeCounter(name: middleware, labels: [("direction", "returned")], help: middlewareHelp)
        let failed = "goreplay_replay_failures_total"
        let failedHelp = "Replayed requests that got no response, by cause."
        failedConnection = registry.makeCounter(name: failed, labels: [("cause", "connection")], help: failedHelp)
        failedTimeout = registry.makeCounter(name: failed, labels: [("cause", "timeout")], help: failedHelp)
        mismatches = registry.makeCounter(
            name: "goreplay_status_mismatches_total", help: "Replayed responses whose status differs from the original response's.")
        unmatched = registry.makeCounter(
            name: "goreplay_join_evicted_total", help: "Original responses forgotten before their replayed response arrived.")
        var responses: [String: (Counter, Counter)] = [:]
        for statusClass in ["1xx", "2xx", "3xx", "4xx", "5xx", "unreadable"] {
            let name = "goreplay_responses_total"
            let help = "Responses by side (original: recorded from production; replayed: from the target) and status class."
            responses[statusClass] = (
                registry.makeCounter(name: name, labels: [("side", "original"), ("class", statusClass)], help: help),
                registry.makeCounter(name: name, labels: [("side", "replayed"), ("class", statusClass)], help: help)
            )
        }
        self.responses = responses
        let latency = "goreplay_response_latency_seconds"
        let latencyHelp = "Response latency by side, as recorded in the response's meta line."
        originalLatency = registry.makeDurationHistogram(
            name: latency, labels: [("side", "original")], buckets: Self.latencyBuckets, help: latencyHelp)
        replayedLatency = registry.makeDurationHistogram(
            name: latency, labels: [("side", "replayed")], buckets: Self.latencyBuckets, help: latencyHelp)
        queueDepth = registry.makeGauge(name: "goreplay_queue_depth", help: "Requests waiting in the outputs' queues.")
    }

    /// Counts one original (type 2) or replayed (type 3) response; requests
    /// are counted from the statistics.
    public func observe(_ message: ReplayMessage) {
        guard message.type != .request else { return }
        let status = Self.statusCode(message.payload)
        let statusClass = status.map { "\($0 / 100)xx" } ?? "unreadable"
        let counters = responses[statusClass] ?? responses["unreadable"]!
        let latency = message.latency.flatMap { $0 >= 0 ? Duration.nanoseconds($0) : nil }
        if message.type == .response {
            counters.original.increment()
            if let latency { originalLatency.record(latency) }
            guard let status else { return }
            let evicted = join.withLockedValue { join -> Int in
                if join.statuses.updateValue(status, forKey: message.id) == nil { join.order.append(message.id) }
                var evicted = 0
                while join.statuses.count > joinWindow, join.head < join.order.count {
                    if join.statuses.removeValue(forKey: join.order[join.head]) != nil { evicted += 1 }
                    join.head += 1
                }
                if join.head > 4096, join.head > join.order.count / 2 {
                    join.order = join.order[join.head...].filter { join.statuses[$0] != nil }
                    join.head = 0
                }
                return evicted
            }
            if evicted > 0 { unmatched.increment(by: Int64(evicted)) }
        } else {
            counters.replayed.increment()
            replayed.increment()
            if let latency { replayedLatency.record(latency) }
            let original = join.withLockedValue { $0.statuses.removeValue(forKey: message.id) }
            if let original, let status, original != status { mismatches.increment() }
        }
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
