import Replay
import Testing

/// The limiter's arithmetic against an injected clock: exact, so no tolerance for machine load.
@Suite("Rate limiter")
struct RateLimiterTests {
    private let second: Int64 = 1_000_000_000

    /// Offers `rate` messages per second for `seconds`, evenly spaced, and counts what passes.
    private func passed(limit: RateLimit, rate: Int, seconds: Int, start: Int64 = 5_000_000_000) -> Int {
        var limiter = RateLimiter(limit)
        let step = second / Int64(rate)
        return (0..<(rate * seconds)).reduce(0) { count, index in
            count + (limiter.allow(now: start + Int64(index) * step) ? 1 : 0)
        }
    }

    @Test("|50 over 3 s of a 1,000/s stream passes exactly 150, and never more than 50 in a window")
    func perSecondWindows() {
        #expect(passed(limit: .perSecond(50), rate: 1000, seconds: 3) == 150)
        var limiter = RateLimiter(.perSecond(50))
        let start: Int64 = 7 * second
        let firstWindow = (0..<500).filter { limiter.allow(now: start + Int64($0) * 1_000_000) }.count
        #expect(firstWindow == 50)
        // Still inside the window: refused; one second after the window opened: a new window.
        let lateInWindow = limiter.allow(now: start + second - 1)
        let nextWindow = limiter.allow(now: start + second)
        #expect(!lateInWindow)
        #expect(nextWindow)
    }

    @Test("|N within 10% over a few seconds for rates from 1 to 5,000 per second")
    func perSecondAccuracy() {
        for limit in [1, 10, 50, 500, 5000] {
            let got = passed(limit: .perSecond(limit), rate: limit * 4, seconds: 4)
            let expected = limit * 4
            #expect(abs(got - expected) * 10 <= expected, "|\(limit): \(got) of \(expected)")
        }
    }

    @Test("a stream slower than the limit passes whole; |0 passes nothing")
    func underAndZero() {
        #expect(passed(limit: .perSecond(50), rate: 40, seconds: 3) == 120)
        #expect(passed(limit: .perSecond(0), rate: 100, seconds: 2) == 0)
    }

    @Test("|N% keeps about N% (binomial bounds, 6 standard deviations)")
    func percentSampling() {
        let got = passed(limit: .percent(20), rate: 10_000, seconds: 1)
        // 10,000 trials at p = 0.2: mean 2,000, standard deviation 40.
        #expect((1760...2240).contains(got), "got \(got)")
        #expect(passed(limit: .percent(100), rate: 1000, seconds: 1) == 1000)
        #expect(passed(limit: .percent(0), rate: 1000, seconds: 1) == 0)
    }
}
