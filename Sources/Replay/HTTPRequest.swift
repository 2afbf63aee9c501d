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
        // Offsets from the shared head walker, relative to the payload's start.
        let parsed:
            (
                startLine: Int, target: Range<Int>, version: Range<Int>, lines: [(HTTP1FieldLine, HTTP1Head.LineShape)],
                end: Int
            )? =
                payload.withUnsafeBytes { bytes in
                    guard let firstLF = HTTP1Head.lineFeed(in: bytes, from: 0),
                        HTTP1StartLine.check(bytes[0...firstLF], role: .request) == .valid
                    else { return nil }
                    let methodEnd = bytes.firstIndex(of: 0x20)! // the check found both spaces
                    let targetEnd = bytes[(methodEnd + 1)...].firstIndex(of: 0x20)!
                    var lines: [(HTTP1FieldLine, HTTP1Head.LineShape)] = []
                    var end = 0
                    do {
                        try HTTP1Head.forEachLine(in: bytes, from: firstLF + 1, end: &end) { lines.append(($0, $1)) }
                    } catch {
                        return nil // no closing empty line
                    }
                    return (firstLF + 1, (methodEnd + 1)..<targetEnd, (targetEnd + 1)..<(targetEnd + 9), lines, end)
                }
        guard let parsed else { return nil }
        let base = payload.startIndex
        func slice(_ range: Range<Int>) -> ArraySlice<UInt8> {
            payload[(base + range.lowerBound)..<(base + range.upperBound)]
        }
        func string(_ range: Range<Int>) -> String { String(decoding: slice(range), as: UTF8.self) }
        self.method = string(0..<(parsed.target.lowerBound - 1))
        self.target = string(parsed.target)
        self.version = string(parsed.version)
        self.startLineRaw = slice(0..<parsed.startLine)

        var fields: [Field] = []
        for (line, shape) in parsed.lines {
            if shape == .continuation, var last = fields.popLast() {
                // Obsolete line folding: kept with the previous field.
                last.value += " " + string(line.value)
                if let raw = last.raw, raw.endIndex == base + line.line.lowerBound {
                    last.raw = payload[raw.startIndex..<(base + line.line.upperBound)]
                }
                fields.append(last)
            } else {
                var field = Field(name: string(line.name), value: string(line.value))
                field.raw = slice(line.line)
                fields.append(field)
            }
        }
        self.fields = fields
        let lastLineStart = parsed.lines.last?.0.line.upperBound ?? parsed.startLine
        self.headEnd = slice(lastLineStart..<parsed.end)
        self.body = payload[(base + parsed.end)...]
    }

    /// The first value of a header (names compare case-insensitively).
    public func header(_ name: String) -> String? {
        fields.first { ASCII.equalsIgnoringCase($0.name.utf8, name.utf8) }?.value
    }

    /// Replaces the value of every `name` header, or inserts the header as the
    /// first one (GoReplay's `--http-set-header`). An empty value keeps the
    /// header with nothing in it.
    /// Sets the first field called `name` (GoReplay's `proto.SetHeader`:
    /// later copies are left alone), or adds it at the top.
    public mutating func setHeader(_ name: String, _ value: String) {
        if let index = fields.firstIndex(where: { ASCII.equalsIgnoringCase($0.name.utf8, name.utf8) }) {
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
        var pairs = target[target.index(after: question)...].split(separator: "&", omittingEmptySubsequences: false)
            .map(String.init)
        var replaced = false
        for index in pairs.indices {
            let key =
                pairs[index].split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).first.map(
                    String.init) ?? ""
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
}
