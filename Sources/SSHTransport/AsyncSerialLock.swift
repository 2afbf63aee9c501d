import Synchronization

/// A FIFO lock for async code: confines a libssh2 session to one task at a time even across `await`s
/// (an actor would not, because actors are re-entrant at every suspension point).
final class AsyncSerialLock: Sendable {
    /// Resumes a waiter: nil hands it the lock, an error refuses it.
    private typealias Resume = @Sendable ((any Error)?) -> Void

    private struct State {
        var locked = false
        var waiters: [(id: UInt64, resume: Resume)] = []
        var cancelledEarly: Set<UInt64> = []
        var nextID: UInt64 = 0
    }

    private let state = Mutex(State())

    /// Takes the lock now, or queues `resume` and returns false.
    private func acquireOrEnqueue(id: UInt64, _ resume: @escaping Resume) -> (any Error)?? {
        state.withLock { s -> (any Error)?? in
            if s.cancelledEarly.remove(id) != nil { return .some(CancellationError()) }
            if !s.locked {
                s.locked = true
                return .some(nil)
            }
            s.waiters.append((id, resume))
            return .none
        }
    }

    private func newID() -> UInt64 {
        state.withLock { s in
            s.nextID += 1
            return s.nextID
        }
    }

    /// Waits for the lock; throws `CancellationError` if the task is cancelled while waiting.
    func lock() async throws {
        let id = newID()
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let immediate = acquireOrEnqueue(id: id) { error in
                    if let error { continuation.resume(throwing: error) } else { continuation.resume() }
                }
                if case .some(let outcome) = immediate {
                    if let outcome { continuation.resume(throwing: outcome) } else { continuation.resume() }
                }
            }
        } onCancel: {
            let waiter = state.withLock { s -> Resume? in
                if let index = s.waiters.firstIndex(where: { $0.id == id }) {
                    return s.waiters.remove(at: index).resume
                }
                s.cancelledEarly.insert(id)
                return nil
            }
            waiter?(CancellationError())
        }
    }

    /// Waits for the lock ignoring cancellation (for clean-up that must happen).
    func lockUncancellable() async {
        let id = newID()
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            if case .some = acquireOrEnqueue(id: id, { _ in continuation.resume() }) { continuation.resume() }
        }
    }

    /// Hands the lock to the next waiter, or releases it.
    func unlock() {
        let next = state.withLock { s -> Resume? in
            if s.waiters.isEmpty {
                s.locked = false
                return nil
            }
            return s.waiters.removeFirst().resume
        }
        next?(nil)
    }

    /// Runs `body` holding the lock.
    func withLock<T>(_ body: () async throws -> T) async throws -> T {
        try await lock()
        do {
            let result = try await body()
            unlock()
            return result
        } catch {
            unlock()
            throw error
        }
    }
}
