import Replay

/// An input whose requests and original responses (types 1 and 2) are
/// noted by `metrics` on their way into the pipeline; everything passes through unchanged, one
/// message at a time (no buffering of its own).
public struct ObservedInput: MessageInput {
    public let base: any MessageInput
    public let metrics: MirrorMetrics

    public init(_ base: any MessageInput, metrics: MirrorMetrics) {
        self.base = base
        self.metrics = metrics
    }

    public var name: String { base.name }

    public func messages() -> AsyncThrowingStream<ReplayMessage, any Error> {
        let upstream = Upstream(base.messages().makeAsyncIterator())
        let metrics = metrics
        return AsyncThrowingStream {
            guard let message = try await upstream.next() else { return nil }
            if message.type != .replayedResponse { metrics.observe(message) }
            return message
        }
    }
}

/// The wrapped iterator. The stream calls `next()` one at a time, which is
/// what makes the unchecked sendability safe.
private final class Upstream: @unchecked Sendable {
    private var iterator: AsyncThrowingStream<ReplayMessage, any Error>.AsyncIterator

    init(_ iterator: AsyncThrowingStream<ReplayMessage, any Error>.AsyncIterator) {
        self.iterator = iterator
    }

    func next() async throws -> ReplayMessage? { try await iterator.next() }
}
