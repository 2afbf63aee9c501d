#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Latencies in fixed log-scale buckets (5% wide, 10 µs to ~20 min): 3 KiB
/// per histogram whatever the sample count, percentiles within 5%, and the
/// buckets themselves drawn as the report's distribution charts.
public struct LatencyBuckets: Sendable, Equatable {
    static let base = 10_000.0 // 10 µs in ns
    static let ratio = 1.05
    static let bucketCount = 384
    private static let logRatio = log(ratio)

    public private(set) var counts: [UInt32]
    public private(set) var count: Int = 0
    public private(set) var maxNanoseconds: Int64 = 0

    public init() {
        counts = [UInt32](repeating: 0, count: Self.bucketCount)
    }

    static func index(of nanoseconds: Int64) -> Int {
        let value = Double(nanoseconds)
        guard value > base else { return 0 }
        return min(Int(log(value / base) / logRatio), bucketCount - 1)
    }

    /// Upper edge of bucket `index`, nanoseconds.
    static func upperEdge(_ index: Int) -> Double { base * pow(ratio, Double(index + 1)) }

    public mutating func record(_ nanoseconds: Int64) {
        let value = max(nanoseconds, 0)
        count += 1
        if value > maxNanoseconds { maxNanoseconds = value }
        let index = Self.index(of: value)
        if counts[index] < UInt32.max { counts[index] += 1 }
    }

    /// The latency below which `fraction` of samples lie (the bucket's upper
    /// edge, capped at the maximum seen); 0 with no samples.
    public func percentile(_ fraction: Double) -> Int64 {
        guard count > 0 else { return 0 }
        let wanted = max(1, Int((Double(count) * fraction).rounded(.up)))
        var seen = 0
        for (index, bucket) in counts.enumerated() {
            seen += Int(bucket)
            if seen >= wanted { return min(Int64(Self.upperEdge(index)), maxNanoseconds) }
        }
        return maxNanoseconds
    }
}
