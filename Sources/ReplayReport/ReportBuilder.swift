import Replay

/// How a 2xx→2xx pair's body lengths may differ before it is reported.
public enum BodyLengthThreshold: Sendable, Equatable {
    case bytes(Int)
    case percent(Double)

    /// `512` (bytes) or `10%` (of the original length).
    public init(parsing text: String) throws(ReportError) {
        if text.hasSuffix("%") {
            guard let value = Double(text.dropLast()), value >= 0, value.isFinite else { throw .badThreshold(text) }
            self = .percent(value)
        } else {
            guard let value = Int(text), value >= 0 else { throw .badThreshold(text) }
            self = .bytes(value)
        }
    }

    var text: String {
        switch self {
        case .bytes(let bytes): "\(bytes) bytes"
        case .percent(let percent): "\(percent)%"
        }
    }

    func exceeded(original: Int, replayed: Int) -> Bool {
        let difference = abs(original - replayed)
        switch self {
        case .bytes(let bytes): return difference > bytes
        case .percent(let percent): return Double(difference) > Double(original) * percent / 100
        }
    }
}

public struct ReportOptions: Sendable {
    public var normaliser = EndpointNormaliser()
    public var bodyLengthThreshold: BodyLengthThreshold?
    /// Requests waiting for their responses at most; beyond it the oldest is
    /// reported with what it has. This is what bounds memory.
    public var pendingWindow = 100_000
    /// Rows kept in the endpoint table; later endpoints are summed as "(other endpoints)".
    public var maxEndpoints = 2_000
    /// Mismatching pairs listed per endpoint.
    public var topMismatches = 3
    public init() {}
}

/// Joins records by id within a bounded window and sums them into a
/// `DiffReport`. Feed records in file order (several files merged by
/// timestamp), then call `finish`.
///
/// A request is settled as soon as it has both responses. One that is
/// still missing a part when `pendingWindow` newer ids are waiting, or at
/// the end of the input, is settled with what it has: no replayed response
/// counts under a cause, no original response as not compared, a response
/// without its request as an orphan.
public struct ReportBuilder: Sendable {
    public let options: ReportOptions

    static let noResponse = "no response recorded (timeout, refused or reset connection)"
    static let inFlight = "input ended while the replay was in flight"
    static let unreadable = "replayed response unreadable (no HTTP status line)"
    static let otherEndpoints = "(other endpoints)"

    /// Status sentinels: not seen yet, or seen but without a status line.
    private static let missing: Int16 = 0
    private static let unreadableStatus: Int16 = -1

    private struct Pending {
        var hasRequest = false
        var endpoint: Int32 = -1
        var example = ""
        /// Arrival order of the request, to tell "never answered" from "in flight".
        var sequence: Int64 = 0
        var requestTimestamp: Int64 = 0
        var originalTimestamp: Int64 = 0
        var originalStatus: Int16 = ReportBuilder.missing
        var replayedStatus: Int16 = ReportBuilder.missing
        var originalLatency: Int64 = -1
        var replayedLatency: Int64 = -1
        var originalBody: Int32 = 0
        var replayedBody: Int32 = 0

        var complete: Bool { hasRequest && originalStatus != missing && replayedStatus != missing }
    }

    private struct EndpointTally {
        var report: EndpointReport
        var pairs: [Pair: (count: Int, example: String)] = [:]
        var original = LatencyBuckets()
        var replayed = LatencyBuckets()
    }

    private struct Pair: Hashable {
        var original: Int16
        var replayed: Int16
    }

    private var pending: [String: Pending] = [:]
    /// Ids in arrival order (with ids already settled among them), for eviction.
    private var order: [String] = []
    private var orderHead = 0
    private var requestSequence: Int64 = 0
    /// The latest request (by arrival) that got a replayed response: a
    /// request before it had its chance, one after it may still have been in
    /// flight when the recording stopped.
    private var lastAnsweredSequence: Int64 = -1

    private var report = DiffReport(files: [])
    private var pairs: [Pair: Int] = [:]
    private var causes: [String: Int] = [:]
    private var endpointIndex: [String: Int32] = [:]
    private var endpoints: [EndpointTally] = []
    private var original = LatencyBuckets()
    private var replayed = LatencyBuckets()
    private var bodySection: BodyLengthSection?

    public init(options: ReportOptions = ReportOptions()) {
        self.options = options
        report.pendingWindow = options.pendingWindow
        bodySection = options.bodyLengthThreshold.map { BodyLengthSection(threshold: $0.text) }
        pending.reserveCapacity(min(options.pendingWindow, 1 << 16))
    }

    /// Requests currently waiting for a response (bounded by `pendingWindow` + 1).
    public var pendingCount: Int { pending.count }

    public mutating func add(_ message: ReplayMessage) {
        report.records += 1
        let entry = pending.removeValue(forKey: message.id)
        let isNew = entry == nil
        var current = entry ?? Pending()
        switch message.type {
        case .request:
            // A duplicate id keeps the first request.
            guard !current.hasRequest else { return keep(current, id: message.id, isNew: isNew) }
            current.hasRequest = true
            current.sequence = requestSequence
            current.requestTimestamp = message.timestamp
            requestSequence += 1
            if let line = HTTPHeadline.requestLine(message.payload) {
                current.example = "\(line.method) \(line.target)"
                current.endpoint = endpointSlot(options.normaliser.endpoint(method: line.method, target: line.target))
            } else {
                current.example = "(unreadable request line)"
                current.endpoint = endpointSlot("(unreadable request line)")
            }
        case .response:
            guard current.originalStatus == Self.missing else { return keep(current, id: message.id, isNew: isNew) }
            current.originalStatus = HTTPHeadline.statusCode(message.payload).map(Int16.init) ?? Self.unreadableStatus
            current.originalLatency = message.latency ?? -1
            current.originalTimestamp = message.timestamp
            current.originalBody = Int32(clamping: HTTPHeadline.bodyLength(message.payload))
        case .replayedResponse:
            guard current.replayedStatus == Self.missing else { return keep(current, id: message.id, isNew: isNew) }
            current.replayedStatus = HTTPHeadline.statusCode(message.payload).map(Int16.init) ?? Self.unreadableStatus
            current.replayedLatency = message.latency ?? -1
            current.replayedBody = Int32(clamping: HTTPHeadline.bodyLength(message.payload))
            if current.hasRequest { lastAnsweredSequence = max(lastAnsweredSequence, current.sequence) }
        }
        if current.complete {
            settle(current, evicted: false)
        } else {
            keep(current, id: message.id, isNew: isNew)
        }
    }

    private mutating func keep(_ entry: Pending, id: String, isNew: Bool) {
        pending[id] = entry
        guard isNew else { return }
        order.append(id)
        while pending.count > options.pendingWindow, orderHead < order.count {
            let oldest = order[orderHead]
            orderHead += 1
            if let evicted = pending.removeValue(forKey: oldest) {
                report.evictedFromWindow += 1
                settle(evicted, evicted: true)
            }
        }
        // Drop settled ids from the order list now and then, so it stays
        // proportional to the window.
        if order.count - orderHead > 2 * options.pendingWindow + 1024
            || (orderHead > 4096 && orderHead > order.count / 2)
        {
            order = order[orderHead...].filter { pending[$0] != nil }
            orderHead = 0
        }
    }

    private mutating func endpointSlot(_ name: String) -> Int32 {
        if let slot = endpointIndex[name] { return slot }
        if endpoints.count >= options.maxEndpoints {
            if let other = endpointIndex[Self.otherEndpoints] { return other }
            endpointIndex[Self.otherEndpoints] = Int32(endpoints.count)
            endpoints.append(EndpointTally(report: EndpointReport(endpoint: Self.otherEndpoints)))
            return Int32(endpoints.count - 1)
        }
        endpointIndex[name] = Int32(endpoints.count)
        endpoints.append(EndpointTally(report: EndpointReport(endpoint: name)))
        return Int32(endpoints.count - 1)
    }

    private mutating func settle(_ entry: Pending, evicted: Bool) {
        guard entry.hasRequest else {
            report.orphanResponses += 1
            return
        }
        report.requests += 1
        var entry = entry
        entry.originalLatency = Self.originalLatency(entry)
        let slot = Int(entry.endpoint)
        if endpoints[slot].report.endpoint == Self.otherEndpoints { report.untrackedEndpoints += 1 }
        endpoints[slot].report.requests += 1
        if entry.originalLatency >= 0, entry.originalStatus > 0 {
            original.record(entry.originalLatency)
            endpoints[slot].original.record(entry.originalLatency)
        }
        if entry.replayedLatency >= 0, entry.replayedStatus > 0 {
            replayed.record(entry.replayedLatency)
            endpoints[slot].replayed.record(entry.replayedLatency)
        }
        guard entry.originalStatus > 0 else {
            report.noOriginalResponse += 1
            return
        }
        guard entry.replayedStatus > 0 else {
            let cause: String
            if entry.replayedStatus == Self.unreadableStatus {
                cause = Self.unreadable
            } else if !evicted, entry.sequence > lastAnsweredSequence {
                cause = Self.inFlight
            } else {
                cause = Self.noResponse
            }
            causes[cause, default: 0] += 1
            endpoints[slot].report.noReplayedResponse += 1
            return
        }
        report.compared += 1
        endpoints[slot].report.compared += 1
        let pair = Pair(original: entry.originalStatus, replayed: entry.replayedStatus)
        pairs[pair, default: 0] += 1
        if pair.original != pair.replayed {
            report.mismatched += 1
            endpoints[slot].report.mismatched += 1
            if let existing = endpoints[slot].pairs[pair] {
                endpoints[slot].pairs[pair] = (existing.count + 1, existing.example)
            } else {
                endpoints[slot].pairs[pair] = (1, entry.example)
            }
        }
        if let threshold = options.bodyLengthThreshold, (200..<300).contains(pair.original),
            (200..<300).contains(pair.replayed),
            threshold.exceeded(original: Int(entry.originalBody), replayed: Int(entry.replayedBody))
        {
            bodySection?.count += 1
            endpoints[slot].report.bodyLengthDifferences += 1
            if let count = bodySection?.examples.count, count < 10 {
                bodySection?.examples.append(
                    BodyLengthExample(
                        request: entry.example, originalLength: Int(entry.originalBody),
                        replayedLength: Int(entry.replayedBody)))
            }
        }
    }

    /// Settles everything still waiting and returns the report.
    public mutating func finish(files: [String], skippedRecords: Int) -> DiffReport {
        for id in order[orderHead...] {
            if let entry = pending.removeValue(forKey: id) { settle(entry, evicted: false) }
        }
        order = []
        orderHead = 0
        var result = report
        result.files = files
        result.skippedRecords = skippedRecords
        result.statusPairs = pairs.map {
            PairCount(original: Int($0.key.original), replayed: Int($0.key.replayed), count: $0.value)
        }
        .sorted { ($0.count, $1.original, $1.replayed) > ($1.count, $0.original, $0.replayed) }
        var classes: [String: Int] = [:]
        for pair in result.statusPairs {
            classes["\(pair.original / 100)xx \(pair.replayed / 100)xx", default: 0] += pair.count
        }
        result.classPairs = classes.map { key, count in
            let parts = key.split(separator: " ")
            return ClassPairCount(original: String(parts[0]), replayed: String(parts[1]), count: count)
        }.sorted { ($0.count, $1.original, $1.replayed) > ($1.count, $0.original, $0.replayed) }
        result.noReplayedResponse = causes.map { CauseCount(cause: $0.key, count: $0.value) }.sorted {
            ($0.count, $1.cause) > ($1.count, $0.cause)
        }
        result.original = LatencySummary(original)
        result.replayed = LatencySummary(replayed)
        result.distribution = Self.distribution(original, replayed)
        result.bodyLengthDifferences = bodySection
        result.endpoints = endpoints.map { tally in
            var row = tally.report
            row.original = LatencySummary(tally.original)
            row.replayed = LatencySummary(tally.replayed)
            row.ratioP50 = Self.ratio(row.replayed.p50, row.original.p50)
            row.ratioP95 = Self.ratio(row.replayed.p95, row.original.p95)
            row.ratioP99 = Self.ratio(row.replayed.p99, row.original.p99)
            row.topMismatches = tally.pairs.map {
                PairExample(
                    original: Int($0.key.original), replayed: Int($0.key.replayed), count: $0.value.count,
                    example: $0.value.example)
            }
            .sorted { ($0.count, $1.original, $1.replayed) > ($1.count, $0.original, $0.replayed) }
            .prefix(options.topMismatches).map { $0 }
            return row
        }.sorted { ($0.requests, $1.endpoint) > ($1.requests, $0.endpoint) }
        return result
    }

    /// Request start to response end. GoReplay 1.3+ stamps a response with
    /// its own first packet and gives its transfer time as latency; 0.16
    /// stamps it with the request's start and gives the whole time. Both
    /// come to (response stamp − request stamp) + latency.
    private static func originalLatency(_ entry: Pending) -> Int64 {
        guard entry.originalLatency >= 0 else { return -1 }
        let gap = entry.originalTimestamp - entry.requestTimestamp
        guard gap >= 0, gap < 3_600_000_000_000 else { return entry.originalLatency }
        return gap + entry.originalLatency
    }

    private static func ratio(_ replayed: Double, _ original: Double) -> Double? {
        original > 0 && replayed > 0 ? replayed / original : nil
    }

    /// The buckets between the first and last non-empty one on either side.
    private static func distribution(_ original: LatencyBuckets, _ replayed: LatencyBuckets) -> [DistributionBucket] {
        let used = original.counts.indices.filter { original.counts[$0] > 0 || replayed.counts[$0] > 0 }
        guard let first = used.first, let last = used.last else { return [] }
        return (first...last).map { index in
            DistributionBucket(
                upperMilliseconds: LatencyBuckets.upperEdge(index) / 1e6, original: Int(original.counts[index]),
                replayed: Int(replayed.counts[index]))
        }
    }
}
