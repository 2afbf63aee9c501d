#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The `|N` / `|N%` suffix of an input or output address.
public enum RateLimit: Sendable, Equatable, CustomStringConvertible {
    /// At most N messages per second (fixed one-second windows).
    case perSecond(Int)
    /// Each message passes with probability N/100. On `--input-file` it is a
    /// speed factor instead.
    case percent(Double)

    public var description: String {
        switch self {
        case .perSecond(let count): "\(count)/s"
        case .percent(let percent): "\(percent)%"
        }
    }
}

/// An address with its optional rate-limit suffix, e.g. `http://staging|10%`.
public struct LimitedAddress: Sendable, Equatable {
    public var address: String
    public var limit: RateLimit?

    public init(address: String, limit: RateLimit? = nil) {
        self.address = address
        self.limit = limit
    }

    /// Splits at the last `|`; nil when the suffix is not `N` or `N%`.
    public init?(parsing text: String) {
        guard let bar = text.lastIndex(of: "|") else {
            self.init(address: text)
            return
        }
        let suffix = text[text.index(after: bar)...].trimmingCharacters(in: " ")
        let address = String(text[..<bar])
        if suffix.hasSuffix("%") {
            guard let percent = Double(suffix.dropLast()), percent.isFinite, percent >= 0, percent <= 1e9 else {
                return nil
            }
            self.init(address: address, limit: .percent(percent))
        } else {
            guard let count = Int(suffix), count >= 0, count <= 1 << 40 else { return nil }
            self.init(address: address, limit: .perSecond(count))
        }
    }
}

extension Substring {
    fileprivate func trimmingCharacters(in character: Character) -> String {
        var text = self
        while text.first == character { text.removeFirst() }
        while text.last == character { text.removeLast() }
        return String(text)
    }
}

/// Monotonic nanoseconds.
@inline(__always)
public func monotonicNanoseconds() -> Int64 {
    var spec = timespec()
    clock_gettime(CLOCK_MONOTONIC, &spec)
    return Int64(spec.tv_sec) * 1_000_000_000 + Int64(spec.tv_nsec)
}

/// Wall-clock nanoseconds since the Unix epoch.
@inline(__always)
public func wallNanoseconds() -> Int64 {
    var spec = timespec()
    clock_gettime(CLOCK_REALTIME, &spec)
    return Int64(spec.tv_sec) * 1_000_000_000 + Int64(spec.tv_nsec)
}

/// Decides, message by message, whether a rate limit lets it through.
public struct RateLimiter: Sendable {
    public let limit: RateLimit
    private var windowStart: Int64 = 0
    private var windowCount = 0
    private var generator = SystemRandomNumberGenerator()

    public init(_ limit: RateLimit) {
        self.limit = limit
    }

    /// True when the message may pass; `now` is monotonic nanoseconds.
    public mutating func allow(now: Int64 = monotonicNanoseconds()) -> Bool {
        switch limit {
        case .percent(let percent):
            if percent >= 100 { return true }
            return Double.random(in: 0..<100, using: &generator) < percent
        case .perSecond(let perSecond):
            if now - windowStart >= 1_000_000_000 {
                windowStart = now
                windowCount = 0
            }
            guard windowCount < perSecond else { return false }
            windowCount += 1
            return true
        }
    }
}
