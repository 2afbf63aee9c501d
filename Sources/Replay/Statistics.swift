import NIOConcurrencyHelpers

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Latencies in a fixed log-scale histogram: bounded memory, ~2% error.
public struct LatencyHistogram: Sendable {
    // Bucket i covers [base * ratio^i, base * ratio^(i+1)) nanoseconds.
    private static let base = 1_000.0
    private static let ratio = 1.02
    private static let bucketCount = 1_200 // 1 µs … > 1 hour
    private var buckets = [UInt64](repeating: 0, count: bucketCount)
    public private(set) var count: UInt64 = 0
    public private(set) var max: Int64 = 0

    public init() {}

    public mutating func record(nanoseconds: Int64) {
        record(nanoseconds: nanoseconds, bucket: Self.bucket(of: nanoseconds))
    }

    /// The bucket `nanoseconds` falls in; with `record(nanoseconds:bucket:)`
    /// the logarithm can be taken before a lock around the histogram.
    static func bucket(of nanoseconds: Int64) -> Int {
        let value = Double(Swift.max(nanoseconds, 1))
        let index = value <= Self.base ? 0 : Int(log(value / Self.base) * Self.inverseLogRatio)
        return Swift.min(index, Self.bucketCount - 1)
    }

    mutating func record(nanoseconds: Int64, bucket: Int) {
        count += 1
        if nanoseconds > max { max = nanoseconds }
        buckets[bucket] += 1
    }

    private static let inverseLogRatio = 1 / log(ratio)

    /// Forgets every sample, keeping the storage.
    public mutating func removeAll() {
        for index in buckets.indices { buckets[index] = 0 }
        count = 0
        max = 0
    }

    /// The latency below which `fraction` of the samples lie (upper bucket edge).
    public func percentile(_ fraction: Double) -> Int64 {
        guard count > 0 else { return 0 }
        let wanted = UInt64((Double(count) * fraction).rounded(.up))
        var seen: UInt64 = 0
        for (index, bucketCount) in buckets.enumerated() {
            seen += bucketCount
            if seen >= wanted {
                return Swift.min(Int64(Self.base * pow(Self.ratio, Double(index + 1))), max)
            }
        }
        return max
    }

    public mutating func merge(_ other: LatencyHistogram) {
        for index in buckets.indices { buckets[index] += other.buckets[index] }
        count += other.count
        max = Swift.max(max, other.max)
    }
}

/// Counters of one output.
public struct OutputCounters: Sendable {
    public var name: String
    /// Messages this output accepted for delivery.
    public var accepted = 0
    /// Requests written to the target (HTTP) or records written (file, stdout).
    public var sent = 0
    /// Responses read back (HTTP).
    public var responses = 0
    /// Dropped because the output's queue was full.
    public var droppedQueueFull = 0
    /// Dropped by the output's `|N` / `|N%` limit.
    public var droppedRateLimit = 0
    /// Connection refused, reset, timed out, unreadable response.
    public var failed = 0
    public var timeouts = 0
    /// `--output-tcp`: records the replayer confirmed / written but never confirmed.
    public var acknowledged = 0
    public var unacknowledged = 0
    /// Idempotent requests sent again after a reused connection closed.
    public var retried = 0
    /// Why requests failed, by one-line reason (at most 10 reasons).
    public var failureReasons: [String: Int] = [:]
    public var statusCodes: [Int: Int] = [:]
    public var latency = LatencyHistogram()
    /// Queue length samples for `--output-http-stats`.
    public var queueLength = 0
    public var queueLengthMax = 0

    public init(name: String) {
        self.name = name
    }
}

/// Counters shared by the pipeline and its outputs; all access is locked.
public final class ReplayStatistics: Sendable {
    public struct Pipeline: Sendable {
        public var requestsRead = 0
        public var responsesRead = 0
        /// Requests dropped by filters (and responses to them).
        public var filtered = 0
        /// Dropped by an input's `|N` limit.
        public var inputRateLimited = 0
        /// Records skipped as corrupt or truncated by file inputs.
        public var corruptRecords = 0
        public var corruptReasons: [String] = []
        /// `--middleware` counters, when one runs.
        public var middleware: MiddlewareCounters?
    }

    private let pipeline = NIOLockedValueBox(Pipeline())
    private let outputs = NIOLockedValueBox([OutputCounters]())

    public init() {}

    public func updatePipeline(_ body: (inout Pipeline) -> Void) {
        pipeline.withLockedValue { body(&$0) }
    }

    /// Registers an output and returns its slot.
    public func registerOutput(name: String) -> Int {
        outputs.withLockedValue { list in
            list.append(OutputCounters(name: name))
            return list.count - 1
        }
    }

    public func updateOutput(_ slot: Int, _ body: (inout OutputCounters) -> Void) {
        outputs.withLockedValue { body(&$0[slot]) }
    }

    public var pipelineSnapshot: Pipeline { pipeline.withLockedValue { $0 } }
    public var outputSnapshot: [OutputCounters] { outputs.withLockedValue { $0 } }

    /// The exit summary, several lines.
    public func summary(elapsedSeconds: Double) -> String {
        let p = pipelineSnapshot
        let list = outputSnapshot
        var sent = 0
        var queueFull = 0
        var rateLimited = 0
        var failed = 0
        var codes: [Int: Int] = [:]
        var latency = LatencyHistogram()
        for output in list {
            sent += output.sent
            queueFull += output.droppedQueueFull
            rateLimited += output.droppedRateLimit
            failed += output.failed
            codes.merge(output.statusCodes, uniquingKeysWith: +)
            latency.merge(output.latency)
        }
        var lines: [String] = []
        lines.append(
            "goreplay: summary after \(formatSeconds(elapsedSeconds)): requests read \(p.requestsRead), responses read \(p.responsesRead), filtered \(p.filtered), sent \(sent), dropped \(queueFull + rateLimited + p.inputRateLimited) (queue full \(queueFull), rate limit \(rateLimited + p.inputRateLimited)), failed \(failed), corrupt records \(p.corruptRecords)"
        )
        if !codes.isEmpty {
            let text = codes.keys.sorted().map { "\($0): \(codes[$0] ?? 0)" }.joined(separator: ", ")
            lines.append("goreplay: status codes: \(text)")
        }
        if latency.count > 0 {
            lines.append(
                "goreplay: latency p50 \(formatNanoseconds(latency.percentile(0.5))), p90 \(formatNanoseconds(latency.percentile(0.9))), p99 \(formatNanoseconds(latency.percentile(0.99))), max \(formatNanoseconds(latency.max))"
            )
        }
        for output in list {
            var line = "goreplay: output \(output.name): sent \(output.sent)"
            if output.responses > 0 || output.failed > 0 {
                line += ", responses \(output.responses), failed \(output.failed)"
            }
            if output.timeouts > 0 { line += " (timeouts \(output.timeouts))" }
            if output.retried > 0 { line += ", retried \(output.retried)" }
            line += ", dropped queue full \(output.droppedQueueFull), rate limit \(output.droppedRateLimit)"
            if output.acknowledged > 0 || output.unacknowledged > 0 {
                line += ", acknowledged \(output.acknowledged), unacknowledged \(output.unacknowledged)"
            }
            lines.append(line)
            for (reason, count) in output.failureReasons.sorted(by: { $0.value > $1.value }) {
                lines.append("goreplay: output \(output.name): failed \(count): \(reason)")
            }
        }
        if let m = p.middleware {
            lines.append(
                "goreplay: middleware: written \(m.written), returned \(m.returned), dropped queue full \(m.droppedQueueFull), invalid lines \(m.invalidLines), oversized lines \(m.oversizedLines)"
            )
        }
        for reason in p.corruptReasons { lines.append("goreplay: skipped record: \(reason)") }
        return lines.joined(separator: "\n")
    }
}

func formatNanoseconds(_ value: Int64) -> String {
    if value >= 1_000_000_000 { return formatSeconds(Double(value) / 1e9) }
    if value >= 1_000_000 { return String(format1: Double(value) / 1e6) + "ms" }
    return String(format1: Double(value) / 1e3) + "µs"
}

func formatSeconds(_ value: Double) -> String { String(format1: value) + "s" }

extension String {
    /// One decimal place, without Foundation's locale-dependent formatting.
    init(format1 value: Double) {
        let tenths = Int64((value * 10).rounded())
        self = "\(tenths / 10).\(abs(tenths % 10))"
    }
}
