-- dmatrace.lua: a Wireshark dissector for the DMA events of a dmatrace
-- .pcapng trace (`--trace FILE.pcapng` on any app, or `dmatrace convert`).
--
-- Such a file has two interfaces: 0 carries the frames (Ethernet), 1 carries
-- every event in the binary form of drivers::trace::Event::encode, link type
-- USER0 (DLT 147). This script names every field of that form and decodes
-- the bytes an event carries by the specification's field names: the NVMe
-- submission and completion queue entries, PRP-list entries, the Intel
-- advanced RX/TX descriptors in their read and write-back formats; a frame's
-- first bytes go to Wireshark's Ethernet dissector.
--
-- Use:  wireshark -X lua_script:tools/dmatrace.lua trace.pcapng
--       tshark -X lua_script:tools/dmatrace.lua -r trace.pcapng \
--              -T fields -e dmatrace.kind -e dmatrace.queue -e dmatrace.nvme.opc
-- (or copy it into ~/.local/lib/wireshark/plugins/). Filter on any field:
-- `dmatrace.kind == "fetch" && dmatrace.nvme.cid == 3`, `dmatrace.nic.rx_wb.dd == 1`.
--
-- Layouts and codes come from the generated block below (the `spec` crate's
-- tables, so this file cannot disagree with the driver); the offsets of the
-- event's binary form are those of Event::encode (drivers/src/trace/event.rs).

-- Binary form of one event (little endian), ENCODED_LEN = 114 bytes.
local ENC = {
  seq = { 0, 8 }, t_ns = { 8, 8 }, dev = { 16, 2 }, agent_code = { 18, 1 },
  agent_num = { 19, 2 }, kind = { 21, 1 }, queue_code = { 22, 1 },
  queue_num = { 23, 2 }, index = { 25, 4 }, addr = { 29, 8 }, len = { 37, 4 },
  value = { 41, 8 }, raw_len = { 49, 1 }, raw = { 50, 64 },
}
local ENCODED_LEN = 114

-- BEGIN GENERATED TABLES (from the spec crate by apps/src/trace/lua.rs; do not edit by hand:
-- DMATRACE_LUA_UPDATE=1 cargo test -p apps --lib trace::lua)
local KINDS = {
  [0] = "reg_read",
  [1] = "reg_write",
  [2] = "desc_write",
  [3] = "desc_read",
  [4] = "fetch",
  [5] = "prp_list",
  [6] = "dma_read",
  [7] = "dma_write",
  [8] = "write_back",
  [9] = "frame",
  [10] = "fault",
  [11] = "note",
  [12] = "truncated",
}
local QUEUE_PREFIXES = {
  [0] = "-",
  [1] = "SQ",
  [2] = "CQ",
  [3] = "RX",
  [4] = "TX",
}
local AGENT_PREFIXES = {
  [0] = { "driver/", true },
  [1] = { "device/controller", false },
  [2] = { "device/rx", true },
  [3] = { "device/tx", true },
  [4] = { "device/wire", false },
}
local LAYOUTS = {
  ["nvme"] = { name = "NVMe submission queue entry", section = "NVMe 1.4 §4.2", bytes = 64, words = {
    { "CDW0", 0, 4, { { "OPC", 0, 8 }, { "FUSE", 8, 2 }, { "PSDT", 14, 2 }, { "CID", 16, 16 } } },
    { "NSID", 4, 4, {  } },
    { "CDW2", 8, 4, {  } },
    { "CDW3", 12, 4, {  } },
    { "MPTR", 16, 8, {  } },
    { "PRP1", 24, 8, {  } },
    { "PRP2", 32, 8, {  } },
    { "CDW10", 40, 4, {  } },
    { "CDW11", 44, 4, {  } },
    { "CDW12", 48, 4, {  } },
    { "CDW13", 52, 4, {  } },
    { "CDW14", 56, 4, {  } },
    { "CDW15", 60, 4, {  } },
  } },
  ["nvme.rw"] = { name = "NVM Read/Write command fields", section = "NVMe 1.4 §6.9, §6.15", bytes = 64, words = {
    { "SLBA", 40, 8, {  } },
    { "CDW12", 48, 4, { { "NLB", 0, 16 }, { "FUA", 30, 1 }, { "LR", 31, 1 } } },
  } },
  ["nvme.cqe"] = { name = "NVMe completion queue entry", section = "NVMe 1.4 §4.6", bytes = 16, words = {
    { "DW0", 0, 4, {  } },
    { "DW1", 4, 4, {  } },
    { "SQHD", 8, 2, {  } },
    { "SQID", 10, 2, {  } },
    { "CID", 12, 2, {  } },
    { "STATUS", 14, 2, { { "P", 0, 1 }, { "SC", 1, 8 }, { "SCT", 9, 3 }, { "CRD", 12, 2 }, { "M", 14, 1 }, { "DNR", 15, 1 } } },
  } },
  ["nvme.prp"] = { name = "NVMe PRP entry (4 KiB pages)", section = "NVMe 1.4 §4.3", bytes = 8, words = {
    { "PRP", 0, 8, { { "OFFSET", 0, 12 }, { "PBA", 12, 52 } } },
  } },
  ["nic.tx_data"] = { name = "advanced transmit data descriptor", section = "82576 datasheet §7.2.2.3, 82599 datasheet §7.2.3.2.4", bytes = 16, words = {
    { "ADDR", 0, 8, {  } },
    { "CMD_TYPE_LEN", 8, 4, { { "DTALEN", 0, 16 }, { "DTYP", 20, 4 }, { "EOP", 24, 1 }, { "IFCS", 25, 1 }, { "RS", 27, 1 }, { "DEXT", 29, 1 }, { "VLE", 30, 1 }, { "TSE", 31, 1 } } },
    { "OLINFO_STATUS", 12, 4, { { "STA", 0, 4 }, { "IDX", 4, 3 }, { "CC", 7, 1 }, { "IXSM", 8, 1 }, { "TXSM", 9, 1 }, { "PAYLEN", 14, 18 } } },
  } },
  ["nic.tx_context"] = { name = "advanced transmit context descriptor", section = "82576 datasheet §7.2.2.3, 82599 datasheet §7.2.3.2.3", bytes = 16, words = {
    { "VLAN_MACIP_LENS", 0, 4, { { "IPLEN", 0, 9 }, { "MACLEN", 9, 7 }, { "VLAN", 16, 16 } } },
    { "SEQNUM_SEED", 4, 4, {  } },
    { "TYPE_TUCMD_MLHL", 8, 4, { { "SNAP", 9, 1 }, { "IPV4", 10, 1 }, { "L4T", 11, 2 }, { "DTYP", 20, 4 }, { "DEXT", 29, 1 } } },
    { "MSS_L4LEN_IDX", 12, 4, { { "IDX", 4, 3 }, { "L4LEN", 8, 8 }, { "MSS", 16, 16 } } },
  } },
  ["nic.tx_wb"] = { name = "advanced transmit descriptor, write-back format", section = "82576 datasheet §7.2.2.3, 82599 datasheet §7.2.3.2.4", bytes = 16, words = {
    { "STATUS", 12, 4, { { "DD", 0, 1 } } },
  } },
  ["nic.rx_read"] = { name = "advanced receive descriptor, read format", section = "82576 datasheet §7.1.5.1, 82599 datasheet §7.1.6.1", bytes = 16, words = {
    { "PKT_ADDR", 0, 8, {  } },
    { "HDR_ADDR", 8, 8, {  } },
  } },
  ["nic.rx_wb_82576"] = { name = "advanced receive descriptor, write-back format (82576, I350)", section = "82576 datasheet §7.1.5.2", bytes = 16, words = {
    { "INFO", 0, 4, { { "RSS_TYPE", 0, 4 }, { "PACKET_TYPE", 4, 13 }, { "HDR_LEN", 21, 10 }, { "SPH", 31, 1 } } },
    { "RSS_HASH", 4, 4, {  } },
    { "STATUS_ERROR", 8, 4, { { "DD", 0, 1 }, { "EOP", 1, 1 }, { "FLM", 2, 1 }, { "VP", 3, 1 }, { "UDPCS", 4, 1 }, { "L4I", 5, 1 }, { "IPCS", 6, 1 }, { "PIF", 7, 1 }, { "VEXT", 9, 1 }, { "UDPV", 10, 1 }, { "LLINT", 11, 1 }, { "TS", 16, 1 }, { "HBO", 23, 1 }, { "L4E", 29, 1 }, { "IPE", 30, 1 }, { "RXE", 31, 1 } } },
    { "LENGTH", 12, 2, {  } },
    { "VLAN", 14, 2, {  } },
  } },
  ["nic.rx_wb_82599"] = { name = "advanced receive descriptor, write-back format (82599)", section = "82599 datasheet §7.1.6.2", bytes = 16, words = {
    { "INFO", 0, 4, { { "RSS_TYPE", 0, 4 }, { "PACKET_TYPE", 4, 13 }, { "HDR_LEN", 21, 10 }, { "SPH", 31, 1 } } },
    { "RSS_HASH", 4, 4, {  } },
    { "STATUS_ERROR", 8, 4, { { "DD", 0, 1 }, { "EOP", 1, 1 }, { "FLM", 2, 1 }, { "VP", 3, 1 }, { "UDPCS", 4, 1 }, { "L4I", 5, 1 }, { "IPCS", 6, 1 }, { "PIF", 7, 1 }, { "VEXT", 9, 1 }, { "UDPV", 10, 1 }, { "LLINT", 11, 1 }, { "TS", 16, 1 }, { "HBO", 23, 1 }, { "RXE", 29, 1 }, { "L4E", 30, 1 }, { "IPE", 31, 1 } } },
    { "LENGTH", 12, 2, {  } },
    { "VLAN", 14, 2, {  } },
  } },
}
local TX_DTYP = { shift = 20, width = 4, context = 2, data = 3 }
local NVM_RW_OPCODES = { [2] = true, [1] = true }
local ADMIN_OPCODES = {
  [0] = "Delete I/O SQ",
  [1] = "Create I/O SQ",
  [2] = "Get Log Page",
  [4] = "Delete I/O CQ",
  [5] = "Create I/O CQ",
  [6] = "Identify",
  [8] = "Abort",
  [9] = "Set Features",
  [10] = "Get Features",
}
local IO_OPCODES = {
  [0] = "Flush",
  [1] = "Write",
  [2] = "Read",
}
local NVME_REGS = {
  [0] = "CAP",
  [4] = "CAP upper dword",
  [8] = "VS",
  [12] = "INTMS",
  [16] = "INTMC",
  [20] = "CC",
  [28] = "CSTS",
  [32] = "NSSR",
  [36] = "AQA",
  [40] = "ASQ",
  [44] = "ASQ upper dword",
  [48] = "ACQ",
  [52] = "ACQ upper dword",
}
local NVME_DOORBELL_BASE = 4096
-- END GENERATED TABLES

local dmatrace = Proto("dmatrace", "dmatrace DMA trace event")

local pf = {
  seq = ProtoField.uint64("dmatrace.seq", "Sequence", base.DEC),
  t_ns = ProtoField.uint64("dmatrace.t_ns", "Time since trace start (ns)", base.DEC),
  dev = ProtoField.uint16("dmatrace.dev", "Device", base.DEC),
  device_kind = ProtoField.string("dmatrace.device_kind", "Device kind"),
  agent = ProtoField.string("dmatrace.agent", "Agent"),
  agent_code = ProtoField.uint8("dmatrace.agent_code", "Agent code", base.DEC),
  agent_num = ProtoField.uint16("dmatrace.agent_num", "Agent number", base.DEC),
  kind = ProtoField.string("dmatrace.kind", "Kind"),
  kind_code = ProtoField.uint8("dmatrace.kind_code", "Kind code", base.DEC),
  queue = ProtoField.string("dmatrace.queue", "Queue"),
  queue_code = ProtoField.uint8("dmatrace.queue_code", "Queue code", base.DEC),
  queue_num = ProtoField.uint16("dmatrace.queue_num", "Queue number", base.DEC),
  index = ProtoField.uint32("dmatrace.index", "Slot", base.DEC),
  addr = ProtoField.uint64("dmatrace.addr", "Address (IOVA or register offset)", base.HEX),
  len = ProtoField.uint32("dmatrace.len", "Length", base.DEC),
  value = ProtoField.uint64("dmatrace.value", "Value", base.HEX),
  raw_len = ProtoField.uint8("dmatrace.raw_len", "Raw length", base.DEC),
  raw = ProtoField.bytes("dmatrace.raw", "Raw bytes"),
  reg = ProtoField.string("dmatrace.reg", "Register"),
  layout = ProtoField.string("dmatrace.layout", "Layout"),
  opcode = ProtoField.string("dmatrace.nvme.opcode", "Opcode name"),
  note = ProtoField.string("dmatrace.note", "Note"),
  prp_entry = ProtoField.uint64("dmatrace.nvme.prp.entry", "PRP entry", base.HEX),
}

-- A ProtoField per word and field of every layout: dmatrace.<key>.<name>,
-- lower case (dmatrace.nvme.opc, dmatrace.nvme.cqe.sc, dmatrace.nic.rx_wb.dd).
-- The two RX write-back variants share their names (dmatrace.nic.rx_wb.*).
local function prefix(key)
  return (key:gsub("_825%d%d$", ""))
end

local layout_pf = {}
local function register(abbrev, label, bytes, is_word)
  if layout_pf[abbrev] then return end
  -- Addresses and whole dwords in hex; fields and 16-bit words (IDs,
  -- lengths) in decimal.
  local b = (is_word and bytes >= 4) and base.HEX or base.DEC
  if bytes > 4 then
    layout_pf[abbrev] = ProtoField.uint64(abbrev, label, b)
  else
    layout_pf[abbrev] = ProtoField.uint32(abbrev, label, b)
  end
end

for key, l in pairs(LAYOUTS) do
  for _, w in ipairs(l.words) do
    local wname, wbytes, fields = w[1], w[3], w[4]
    register("dmatrace." .. prefix(key) .. "." .. wname:lower(), wname, wbytes, true)
    for _, f in ipairs(fields) do
      register("dmatrace." .. prefix(key) .. "." .. f[1]:lower(), f[1], f[3] > 32 and 8 or 4, false)
    end
  end
end

local all = {}
for _, f in pairs(pf) do all[#all + 1] = f end
for _, f in pairs(layout_pf) do all[#all + 1] = f end
dmatrace.fields = all

local f_ifdesc = Field.new("frame.interface_description")
local eth = Dissector.get("eth_withoutfcs")

-- The devices' kinds from the event interface's description
-- ("... devices: nvme,dstrd=0 ixgbe"), by device number.
local function devices()
  local fi = f_ifdesc()
  local out = {}
  if not fi then return out end
  local d = tostring(fi.value):match("devices:%s*(.*)$") or ""
  for word in d:gmatch("%S+") do
    out[#out + 1] = { kind = word:match("^(%a+)"), dstrd = tonumber(word:match("dstrd=(%d+)") or "0") }
  end
  return out
end

-- The value of a word of up to 8 bytes at `off` of `raw` (a TvbRange).
local function word_value(raw, off, bytes)
  local r = raw:range(off, bytes)
  if bytes == 8 then return r:le_uint64() end
  return r:le_uint()
end

-- A field of a word: UInt64 for 8-byte words, a number otherwise.
local function field_value(v, shift, width, bytes)
  if bytes == 8 then
    local x = v:rshift(shift)
    if width < 64 then x = x:band(UInt64(1):lshift(width) - 1) end
    if width <= 32 then return x:tonumber() end
    return x
  end
  return bit32.extract(v, shift, width)
end

-- Decode `raw` by layout `key` into a subtree; returns a table of values by
-- field name for the Info column.
local function decode(tree, raw, key)
  local l = LAYOUTS[key]
  local t = tree:add(dmatrace, raw, l.name .. " (" .. l.section .. ")")
  local got = {}
  for _, w in ipairs(l.words) do
    local wname, off, bytes, fields = w[1], w[2], w[3], w[4]
    if off + bytes <= raw:len() then
      local v = word_value(raw, off, bytes)
      local wr = raw:range(off, bytes)
      local wt = t:add(layout_pf["dmatrace." .. prefix(key) .. "." .. wname:lower()], wr, v)
      got[wname] = v
      for _, f in ipairs(fields) do
        local fv = field_value(v, f[2], f[3], bytes)
        wt:add(layout_pf["dmatrace." .. prefix(key) .. "." .. f[1]:lower()], wr, fv)
        got[f[1]] = fv
      end
    end
  end
  return got
end

local function hex(v)
  if type(v) == "number" then return string.format("0x%x", v) end
  return "0x" .. v:tohex():gsub("^0+(.)", "%1")
end

function dmatrace.dissector(tvb, pinfo, tree)
  if tvb:len() < ENCODED_LEN then return 0 end
  local function r(name) return tvb:range(ENC[name][1], ENC[name][2]) end
  local kind_code = r("kind"):le_uint()
  local kind = KINDS[kind_code] or ("kind " .. kind_code)
  local qcode, qnum = r("queue_code"):le_uint(), r("queue_num"):le_uint()
  local queue = QUEUE_PREFIXES[qcode] or "?"
  if queue ~= "-" then queue = queue .. qnum end
  local acode, anum = r("agent_code"):le_uint(), r("agent_num"):le_uint()
  local ap = AGENT_PREFIXES[acode]
  local agent = ap and (ap[2] and (ap[1] .. anum) or ap[1]) or ("agent " .. acode)
  local dev = r("dev"):le_uint()
  local index = r("index"):le_uint()
  local addr = r("addr"):le_uint64()
  local len = r("len"):le_uint()
  local value = r("value"):le_uint64()
  local raw_len = math.min(r("raw_len"):le_uint(), 64)
  local device = devices()[dev + 1] or {}

  pinfo.cols.protocol = "dmatrace"
  local t = tree:add(dmatrace, tvb:range(0, ENCODED_LEN), "dmatrace " .. kind .. " " .. queue)
  t:add_le(pf.seq, r("seq"))
  t:add_le(pf.t_ns, r("t_ns"))
  t:add_le(pf.dev, r("dev"))
  if device.kind then t:add(pf.device_kind, r("dev"), device.kind) end
  t:add(pf.agent, r("agent_code"), agent)
  t:add_le(pf.agent_code, r("agent_code"))
  t:add_le(pf.agent_num, r("agent_num"))
  t:add(pf.kind, r("kind"), kind)
  t:add_le(pf.kind_code, r("kind"))
  t:add(pf.queue, r("queue_code"), queue)
  t:add_le(pf.queue_code, r("queue_code"))
  t:add_le(pf.queue_num, r("queue_num"))
  t:add_le(pf.index, r("index"))
  t:add_le(pf.addr, r("addr"))
  t:add_le(pf.len, r("len"))
  t:add_le(pf.value, r("value"))
  t:add_le(pf.raw_len, r("raw_len"))
  local raw = nil
  if raw_len > 0 then
    raw = tvb:range(ENC.raw[1], raw_len)
    t:add(pf.raw, raw)
  end

  local info = string.format("%s %s", agent, kind)
  if queue ~= "-" then info = info .. string.format(" %s[%d]", queue, index) end
  local written = kind == "desc_write" or kind == "fetch"
  local back = kind == "desc_read" or kind == "write_back"
  local qp = QUEUE_PREFIXES[qcode]

  if kind == "reg_read" or kind == "reg_write" then
    local off = addr:tonumber()
    local name = nil
    if device.kind == "nvme" then
      name = NVME_REGS[off]
      local stride = 4 * 2 ^ (device.dstrd or 0)
      local rel = off - NVME_DOORBELL_BASE
      if not name and rel >= 0 and rel % stride == 0 then
        local i = rel / stride
        name = string.format(i % 2 == 0 and "SQ%d tail doorbell" or "CQ%d head doorbell", math.floor(i / 2))
      end
    end
    name = name or string.format("0x%x", off)
    t:add(pf.reg, r("addr"), name)
    info = info .. string.format(" %s = %s", name, hex(value))
  elseif raw and qp == "SQ" and written and raw_len >= LAYOUTS["nvme"].bytes then
    local s = decode(t, raw, "nvme")
    local names = qnum == 0 and ADMIN_OPCODES or IO_OPCODES
    local opname = names[s.OPC] or "opcode"
    t:add(pf.opcode, raw:range(0, 1), opname)
    t:add(pf.layout, raw, LAYOUTS["nvme"].name)
    info = info .. string.format(" %s (%02xh) CID=%d NSID=%d PRP1=%s PRP2=%s",
      opname, s.OPC, s.CID, s.NSID, hex(s.PRP1), hex(s.PRP2))
    if qnum ~= 0 and NVM_RW_OPCODES[s.OPC] then
      local rw = decode(t, raw, "nvme.rw")
      info = info .. string.format(" SLBA=%s NLB=%d", hex(rw.SLBA), rw.NLB)
    end
  elseif raw and qp == "CQ" and back and raw_len >= LAYOUTS["nvme.cqe"].bytes then
    local c = decode(t, raw, "nvme.cqe")
    t:add(pf.layout, raw, LAYOUTS["nvme.cqe"].name)
    info = info .. string.format(" CID=%d SQID=%d SQHD=%d P=%d SCT=%d SC=0x%x",
      c.CID, c.SQID, c.SQHD, c.P, c.SCT, c.SC)
  elseif raw and kind == "prp_list" then
    t:add(pf.layout, raw, LAYOUTS["nvme.prp"].name)
    for off = 0, raw_len - 8, 8 do
      t:add_le(pf.prp_entry, raw:range(off, 8))
    end
    info = info .. string.format(" @%s %d entries", hex(addr), len)
  elseif raw and (qp == "TX" or qp == "RX") and (written or back) and raw_len >= 16 then
    local key
    if qp == "TX" and back then
      key = "nic.tx_wb"
    elseif qp == "TX" then
      local ctl = raw:range(8, 4):le_uint()
      key = bit32.extract(ctl, TX_DTYP.shift, TX_DTYP.width) == TX_DTYP.context
        and "nic.tx_context" or "nic.tx_data"
    elseif written then
      key = "nic.rx_read"
    else
      key = device.kind == "igb" and "nic.rx_wb_82576" or "nic.rx_wb_82599"
    end
    local d = decode(t, raw, key)
    t:add(pf.layout, raw, LAYOUTS[key].name)
    if key == "nic.tx_data" then
      info = info .. string.format(" data ADDR=%s DTALEN=%d PAYLEN=%d EOP=%d RS=%d",
        hex(d.ADDR), d.DTALEN, d.PAYLEN, d.EOP, d.RS)
    elseif key == "nic.tx_context" then
      info = info .. string.format(" context MACLEN=%d IPLEN=%d L4T=%d", d.MACLEN, d.IPLEN, d.L4T)
    elseif key == "nic.tx_wb" then
      info = info .. string.format(" DD=%d", d.DD)
    elseif key == "nic.rx_read" then
      info = info .. string.format(" PKT_ADDR=%s", hex(d.PKT_ADDR))
    else
      info = info .. string.format(" LENGTH=%d DD=%d EOP=%d RSS_HASH=0x%08x",
        d.LENGTH, d.DD, d.EOP, d.RSS_HASH)
    end
  elseif kind == "dma_read" or kind == "dma_write" then
    info = info .. string.format(" %s +%d", hex(addr), len)
  elseif kind == "fault" then
    info = info .. string.format(" %s %s +%d", value:tonumber() == 1 and "write" or "read", hex(addr), len)
  elseif kind == "note" and raw then
    local text = raw:string()
    t:add(pf.note, raw, text)
    info = info .. ": " .. text
  elseif kind == "frame" then
    info = info .. string.format(" %d bytes", len)
    if raw then eth:call(raw:tvb(), pinfo, tree) end
  end
  pinfo.cols.protocol = "dmatrace"
  pinfo.cols.info = info
  return ENCODED_LEN
end

DissectorTable.get("wtap_encap"):add(wtap_encaps.USER0, dmatrace)
