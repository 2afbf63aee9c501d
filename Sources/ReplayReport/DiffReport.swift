/// What staging did with production's requests: the result of joining each
/// request (type 1) with its original (type 2) and replayed (type 3)
/// response. Encoded as is for `--json`; field names are the JSON keys.
public struct DiffReport: Sendable, Codable, Equatable {
    public var files: [String]
    /// Well-formed records read, all types.
    public var records = 0
    /// Records skipped as corrupt or truncated.
    public var skippedRecords = 0
    /// Why, for the first few (file and reason).
    public var skippedReasons: [String] = []
    /// Requests seen (type 1).
    public var requests = 0
    /// Requests with a readable original and a readable replayed response.
    public var compared = 0
    /// Compared requests whose two status codes differ.
    public var mismatched = 0
    /// Exact status pairs, most frequent first.
    public var statusPairs: [PairCount] = []
    /// Status class pairs ("2xx" → "5xx"), most frequent first.
    public var classPairs: [ClassPairCount] = []
    /// Requests with an original response but no replayed one, by cause.
    public var noReplayedResponse: [CauseCount] = []
    /// Requests with no (readable) original response: not compared.
    public var noOriginalResponse = 0
    /// Responses whose request never appeared in the input.
    public var orphanResponses = 0
    /// Entries the join gave up on because more than `pendingWindow` were
    /// waiting; each is also counted under its missing part.
    public var evictedFromWindow = 0
    public var pendingWindow = 0
    public var original = LatencySummary()
    public var replayed = LatencySummary()
    /// Both sides' latency distribution, for charts: bucket upper edges in
    /// milliseconds and the count in each, over the buckets in use.
    public var distribution: [DistributionBucket] = []
    /// Endpoints, most requests first.
    public var endpoints: [EndpointReport] = []
    /// Requests whose endpoint was not tracked (over the endpoint limit),
    /// counted under "(other endpoints)".
    public var untrackedEndpoints = 0
    /// 2xx→2xx pairs whose body lengths differ by more than the threshold;
    /// nil unless a threshold was given.
    public var bodyLengthDifferences: BodyLengthSection?

    public init(files: [String]) {
        self.files = files
    }

    public var mismatchRate: Double { compared == 0 ? 0 : Double(mismatched) / Double(compared) }
}

public struct PairCount: Sendable, Codable, Equatable {
    public var original: Int
    public var replayed: Int
    public var count: Int

    public init(original: Int, replayed: Int, count: Int) {
        self.original = original
        self.replayed = replayed
        self.count = count
    }
}

public struct ClassPairCount: Sendable, Codable, Equatable {
    public var original: String
    public var replayed: String
    public var count: Int

    public init(original: String, replayed: String, count: Int) {
        self.original = original
        self.replayed = replayed
        self.count = count
    }
}

public struct CauseCount: Sendable, Codable, Equatable {
    public var cause: String
    public var count: Int

    public init(cause: String, count: Int) {
        self.cause = cause
        self.count = count
    }
}

public struct DistributionBucket: Sendable, Codable, Equatable {
    public var upperMilliseconds: Double
    public var original: Int
    public var replayed: Int

    public init(upperMilliseconds: Double, original: Int, replayed: Int) {
        self.upperMilliseconds = upperMilliseconds
        self.original = original
        self.replayed = replayed
    }
}

/// Percentiles of one side, milliseconds.
public struct LatencySummary: Sendable, Codable, Equatable {
    public var count = 0
    public var p50 = 0.0
    public var p95 = 0.0
    public var p99 = 0.0
    public var max = 0.0

    public init() {}

    init(_ buckets: LatencyBuckets) {
        count = buckets.count
        p50 = Double(buckets.percentile(0.50)) / 1e6
        p95 = Double(buckets.percentile(0.95)) / 1e6
        p99 = Double(buckets.percentile(0.99)) / 1e6
        max = Double(buckets.maxNanoseconds) / 1e6
    }
}

/// A status pair on one endpoint with one request that showed it.
public struct PairExample: Sendable, Codable, Equatable {
    public var original: Int
    public var replayed: Int
    public var count: Int
    /// The request line's method and target, e.g. `GET /search?q=vat`.
    public var example: String

    public init(original: Int, replayed: Int, count: Int, example: String) {
        self.original = original
        self.replayed = replayed
        self.count = count
        self.example = example
    }
}

public struct EndpointReport: Sendable, Codable, Equatable {
    /// Method and normalised path, e.g. `GET /api/content/{n}`.
    public var endpoint: String
    public var requests = 0
    public var compared = 0
    public var mismatched = 0
    public var noReplayedResponse = 0
    public var topMismatches: [PairExample] = []
    public var original = LatencySummary()
    public var replayed = LatencySummary()
    /// Replayed ÷ original at each percentile; nil where a side has no samples.
    public var ratioP50: Double?
    public var ratioP95: Double?
    public var ratioP99: Double?
    public var bodyLengthDifferences = 0

    public var mismatchRate: Double { compared == 0 ? 0 : Double(mismatched) / Double(compared) }
}

public struct BodyLengthSection: Sendable, Codable, Equatable {
    /// The threshold as given: bytes, or a percentage of the original length.
    public var threshold: String
    public var count = 0
    public var examples: [BodyLengthExample] = []
}

public struct BodyLengthExample: Sendable, Codable, Equatable {
    public var request: String
    public var originalLength: Int
    public var replayedLength: Int

    public init(request: String, originalLength: Int, replayedLength: Int) {
        self.request = request
        self.originalLength = originalLength
        self.replayedLength = replayedLength
    }
}

/// Bad report options or input.
public enum ReportError: Error, Sendable, Equatable, CustomStringConvertible {
    case badPattern(String, String)
    case badThreshold(String)

    public var description: String {
        switch self {
        case .badPattern(let pattern, let why):
            "endpoint pattern \"\(pattern)\": \(why) (e.g. /api/content/* or /search/**)"
        case .badThreshold(let text):
            "body length threshold \"\(text)\": give bytes (e.g. 512) or a percentage (e.g. 10%)"
        }
    }
}
