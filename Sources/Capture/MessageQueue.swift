import Foundation
import Replay
import Synchronization

/// Hands messages from capture threads to one async consumer.
///
/// Bounded: a live capture counts and drops what does not fit (it cannot
/// slow the network down), a file reader waits for room instead.
final class MessageQueue: @unchecked Sendable {
    private let condition = NSCondition()
    private var items: [ReplayMessage] = []
    private var head = 0
    private var waiter: CheckedContinuation<ReplayMessage?, any Error>?
    private var failure: (any Error)?
    private var activeSources: Int
    private var cancelled = false
    private var cancelHandlers: [@Sendable () -> Void] = []
    let limit: Int

    init(limit: Int, sources: Int) {
        self.limit = max(1, limit)
        self.activeSources = sources
    }

    var isCancelled: Bool {
        condition.lock()
        defer { condition.unlock() }
        return cancelled
    }

    /// Runs `handler` when the consumer goes away (at once if it has).
    func onCancel(_ handler: @escaping @Sendable () -> Void) {
        condition.lock()
        if cancelled {
            condition.unlock()
            handler()
            return
        }
        cancelHandlers.append(handler)
        condition.unlock()
    }

    /// False when the message was not queued: full (and `wait` false) or
    /// cancelled.
    func push(_ message: ReplayMessage, wait: Bool) -> Bool {
        condition.lock()
        if cancelled {
            condition.unlock()
            return false
        }
        if let waiting = waiter {
            waiter = nil
            condition.unlock()
            waiting.resume(returning: message)
            return true
        }
        while items.count - head >= limit {
            if !wait || cancelled {
                condition.unlock()
                return false
            }
            condition.wait()
        }
        if cancelled {
            condition.unlock()
            return false
        }
        items.append(message)
        condition.unlock()
        return true
    }

    /// A source stopped; the stream ends when all have (or one failed).
    func sourceFinished(error: (any Error)?) {
        condition.lock()
        activeSources -= 1
        if let error, failure == nil { failure = error }
        let done = activeSources <= 0 || failure != nil
        let waiting = done && head == items.count ? waiter : nil
        if waiting != nil { waiter = nil }
        let error = failure
        condition.unlock()
        if let waiting {
            if let error { waiting.resume(throwing: error) } else { waiting.resume(returning: nil) }
        }
        if error != nil { cancel() }
    }

    /// Stops the sources and wakes everyone.
    func cancel() {
        condition.lock()
        let alreadyCancelled = cancelled
        cancelled = true
        let waiting = waiter
        waiter = nil
        let handlers = cancelHandlers
        cancelHandlers = []
        condition.broadcast()
        condition.unlock()
        waiting?.resume(throwing: CancellationError())
        if !alreadyCancelled {
            for handler in handlers { handler() }
        }
    }

    /// The next message, nil at the end.
    func next() async throws -> ReplayMessage? {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation {
                (continuation: CheckedContinuation<ReplayMessage?, any Error>) in
                condition.lock()
                if head < items.count {
                    let message = items[head]
                    head += 1
                    if head >= 1024 && head * 2 >= items.count {
                        items.removeFirst(head)
                        head = 0
                    }
                    condition.signal()
                    condition.unlock()
                    continuation.resume(returning: message)
                } else if let failure {
                    condition.unlock()
                    continuation.resume(throwing: failure)
                } else if activeSources <= 0 {
                    condition.unlock()
                    continuation.resume(returning: nil)
                } else if cancelled {
                    condition.unlock()
                    continuation.resume(throwing: CancellationError())
                } else {
                    waiter = continuation
                    condition.unlock()
                }
            }
        } onCancel: {
            self.cancel()
        }
    }
}

/// Cancels the queue when the stream holding it is released unfinished.
final class CancelOnRelease: Sendable {
    let queue: MessageQueue
    init(_ queue: MessageQueue) { self.queue = queue }
    deinit { queue.cancel() }
}

/// The latest statistics of each capture source, readable from any thread.
final class StatisticsBoard: Sendable {
    private struct State {
        var bySource: [Int: CaptureStatistics] = [:]
        var running = 0
    }
    private let state = Mutex(State())

    func publish(_ statistics: CaptureStatistics, source: Int) {
        state.withLock { $0.bySource[source] = statistics }
    }

    func sourceStarted() {
        state.withLock { $0.running += 1 }
    }

    /// Called after a source's final `publish`.
    func sourceStopped() {
        state.withLock { $0.running -= 1 }
    }

    var isRunning: Bool { state.withLock { $0.running > 0 } }

    func total() -> CaptureStatistics {
        state.withLock { state in
            var sum = CaptureStatistics()
            for statistics in state.bySource.values { sum.add(statistics) }
            return sum
        }
    }
}
