/// An HTTP/1.x request held as its original bytes, split into start line,
/// header lines and body so that a rewrite regenerates only the line it
/// changes; everything else (header order, spelling, line endings, chunked
/// bodies) goes out exactly as captured.
public struct HTTPRequest: Sendable {
    /// One header line. `raw` is the captured line with its terminator; it is
    /// dropped when the field is changed, and the line is then rebuilt.
    public struct Field: Sendable {
        public var name: String
        public var value: String
        var raw: ArraySlice<UInt8>?

        public init(name: String, value: String) {
            self.name = name
            self.value = value
            self.raw = nil
        }
    }

    public private(set) var method: String
    public var target: String {
        didSet { startLineRaw = nil }
    }
    public private(set) var version: String
    public private(set) var fields: [Field]
    /// Everything after the blank line, untouched.
    public let body: ArraySlice<UInt8>

    private var startLineRaw: ArraySlice<UInt8>?
    private let headEnd: ArraySlice<UInt8>

    /// Parses `payload`; nil when it does not start with an HTTP/1.x request
    /// line and a complete header block.
    public init?(parsing payload: [UInt8]) {
        self.init(parsing: payload[...])
    }

    public init?(parsing payload: ArraySlice<UInt8>) {
        var index = payload.startIndex
        guard let firstLineEnd = payload[index...].firstIndex(of: 0x0A) else { return nil }
        var lineEnd = firstLineEnd
        if lineEnd > index && payload[lineEnd - 1] == 0x0D { lineEnd -= 1 }
        let parts = payload[index..<lineEnd].split(separator: 0x20, omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[0].isEmpty, !parts[1].isEmpty,
            parts[2].starts(with: "HTTP/".utf8),
            let method = String(validating: parts[0], as: UTF8.self),
            let target = String(validating: parts[1], as: UTF8.self),
            let version = String(validating: parts[2], as: UTF8.self),
            method.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F })
        else { return nil }
        self.method = method
        self.target = target
        self.version = version
        self.startLineRaw = payload[index...firstLineEnd]
        index = firstLineEnd + 1

        var fields: [Field] = []
        while true {
            guard let end = payload[index...].firstIndex(of: 0x0A) else { return nil }
            let line = payload[index...end]
            var content = payload[index..<end]
            if content.last == 0x0D { content = content.dropLast() }
            index = end + 1
            if content.isEmpty {
                self.headEnd = line
                break
            }
            if let first = content.first, first == 0x20 || first == 0x09, var last = fields.popLast() {
                // Obsolete line folding: keep it with the previous field.
                let value = String(decoding: content, as: UTF8.self)
                last.value += " " + value.trimmingSpaces()
                if let raw = last.raw, raw.endIndex == line.startIndex {
                    last.raw = payload[raw.startIndex..<line.endIndex]
                }
                fields.append(last)
                continue
            }
            let text = String(decoding: content, as: UTF8.self)
            if let colon = text.firstIndex(of: ":") {
                var field = Field(name: String(text[..<colon]), value: String(text[text.index(after: colon)...]).trimmingSpaces())
                field.raw = line
                fields.append(field)
            } else {
                var field = Field(name: "", value: text)
                field.raw = line
                fields.append(field)
            }
        }
        self.fields = fields
        self.body = payload[index...]
    }

    /// The first value of a header (names compare case-insensitively).
    public func header(_ name: String) -> String? {
        fields.first { $0.name.caseInsensitiveEquals(name) }?.value
    }

    /// Replaces the value of every `name` header, or inserts the header as the
    /// first one (GoReplay's `--http-set-header`). An empty value keeps the
    /// header with nothing in it.
    /// Sets the first field called `name` (GoReplay's `proto.SetHeader`:
    /// later copies are left alone), or adds it at the top.
    public mutating func setHeader(_ name: String, _ value: String) {
        if let index = fields.firstIndex(where: { $0.name.caseInsensitiveEquals(name) }) {
            fields[index].value = value
            fields[index].raw = nil
        } else {
            fields.insert(Field(name: name, value: value), at: 0)
        }
    }

    /// Changes the value of one existing field.
    public mutating func setValue(_ value: String, at index: Int) {
        fields[index].value = value
        fields[index].raw = nil
    }

    /// The path part of the target (before `?`).
    public var path: String {
        if let question = target.firstIndex(of: "?") { return String(target[..<question]) }
        return target
    }

    /// Sets `name=value` in the query, replacing an existing value or appending.
    public mutating func setQueryParameter(_ name: String, _ value: String) {
        guard let question = target.firstIndex(of: "?") else {
            target += "?\(name)=\(value)"
            return
        }
        let base = target[..<question]
        var pairs = target[target.index(after: question)...].split(separator: "&", omittingEmptySubsequences: false).map(String.init)
        var replaced = false
        for index in pairs.indices {
            let key = pairs[index].split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
            if key == name {
                pairs[index] = "\(name)=\(value)"
                replaced = true
            }
        }
        if !replaced { pairs.append("\(name)=\(value)") }
        target = base + "?" + pairs.joined(separator: "&")
    }

    /// The value of a query parameter, if present.
    public func queryParameter(_ name: String) -> String? {
        guard let question = target.firstIndex(of: "?") else { return nil }
        for pair in target[target.index(after: question)...].split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            if parts.first.map(String.init) == name { return parts.count > 1 ? String(parts[1]) : "" }
        }
        return nil
    }

    /// The request as bytes: original bytes where nothing changed.
    public func serialized() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(body.count + 512)
        if let startLineRaw {
            out.append(contentsOf: startLineRaw)
        } else {
            out.append(contentsOf: "\(method) \(target) \(version)\r\n".utf8)
        }
        for field in fields {
            if let raw = field.raw {
                out.append(contentsOf: raw)
            } else if field.value.isEmpty {
                out.append(contentsOf: "\(field.name):\r\n".utf8)
            } else {
                out.append(contentsOf: "\(field.name): \(field.value)\r\n".utf8)
            }
        }
        out.append(contentsOf: headEnd)
        out.append(contentsOf: body)
        return out
    }
}

extension String {
    func trimmingSpaces() -> String {
        var scalars = Substring(self)
        while let first = scalars.first, first == " " || first == "\t" { scalars.removeFirst() }
        while let last = scalars.last, last == " " || last == "\t" { scalars.removeLast() }
        return String(scalars)
    }

    func caseInsensitiveEquals(_ other: String) -> Bool {
        let a = utf8, b = other.utf8
        guard a.count == b.count else { return false }
        return zip(a, b).allSatisfy { x, y in
            x == y || (x | 0x20 == y | 0x20 && (x | 0x20) >= 0x61 && (x | 0x20) <= 0x7A)
        }
    }
}
