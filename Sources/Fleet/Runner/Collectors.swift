import Synchronization
import SSHTransport

/// Keeps the last complete stderr line of a host's task for the summary.
final class StderrTail: Sendable {
    private let state = Mutex<(partial: [UInt8], last: String?)>(([], nil))

    func append(_ bytes: [UInt8]) {
        state.withLock { s in
            s.partial += bytes
            while let newline = s.partial.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: s.partial[..<newline], as: UTF8.self)
                    .trimmingCharacters(in: .whitespaces)
                if !line.isEmpty { s.last = line }
                s.partial.removeSubrange(...newline)
            }
            if s.partial.count > 4096 { s.partial.removeFirst(s.partial.count - 4096) }
        }
    }

    var lastLine: String? {
        state.withLock { s in
            let partial = String(decoding: s.partial, as: UTF8.self).trimmingCharacters(in: .whitespaces)
            return partial.isEmpty ? s.last : partial
        }
    }
}

import Foundation
