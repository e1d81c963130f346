"""Readers: Excel-style CSV (BOM, CRLF, quoted newlines, cp1252, `;`), JSON, JSONL, XLSX."""

from datetime import datetime

import pytest

from etl.readers import InputError, cell_text, flatten, read_rows, sample

EXCEL_CSV = (
    '\ufeffid,subject,body\r\n1,"Refund, please","line one\r\nline two"\r\n'
    '2,Café ☕,"she said ""hi"""\r\n\r\n,,\r\n'
)


def test_excel_csv_bom_crlf_quoted_newlines_and_blank_rows(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes(EXCEL_CSV.encode("utf-8"))
    rows = list(read_rows(path))
    assert [r.number for r in rows] == [2, 3]  # spreadsheet rows; the header is row 1
    assert list(rows[0].data) == ["id", "subject", "body"]  # no BOM glued to "id"
    assert rows[0].data["subject"] == "Refund, please"
    assert rows[0].data["body"] == "line one\r\nline two"
    assert rows[1].data == {"id": "2", "subject": "Café ☕", "body": 'she said "hi"'}


def test_cp1252_needs_the_encoding_option_and_says_so(tmp_path):
    path = tmp_path / "win.csv"
    path.write_bytes("id;name\r\n1;Zoë Müller – 5 €\r\n".encode("cp1252"))
    with pytest.raises(InputError, match=r"line 2: .*not valid utf-8-sig.*--encoding cp1252"):
        list(read_rows(path))
    rows = list(read_rows(path, encoding="cp1252"))
    assert rows[0].data == {"id": "1", "name": "Zoë Müller – 5 €"}  # `;` guessed as delimiter


def test_a_row_with_extra_cells_is_an_error_row_not_a_crash(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("id,subject\n1,ok\n2,a,b\n3,fine\n", encoding="utf-8")
    rows = list(read_rows(path))
    assert [r.data is None for r in rows] == [False, True, False]
    assert "3 cells but the header has 2" in rows[1].error
    assert rows[1].number == 3


@pytest.mark.parametrize(
    "after",
    [
        "3,third\n4,fourth\n",  # no quote follows: the stray one ran to the end of the file
        '3,third\n4,"fourth"\n',  # a later quote closed it, glued to more text
    ],
)
def test_a_stray_quote_rejects_its_row_and_the_rows_after_it_still_load(tmp_path, after):
    path = tmp_path / "t.csv"
    path.write_text('id,subject\n1,"multi\nline, fine"\n2,"broken\n' + after, encoding="utf-8")
    rows = list(read_rows(path))
    assert [r.number for r in rows] == [2, 3, 4, 5]
    assert rows[0].data == {"id": "1", "subject": "multi\nline, fine"}  # quoted newlines are fine
    assert rows[1].data is None
    assert "the row that starts on line 4 do not pair up" in rows[1].error
    assert [r.data for r in rows[2:]] == [
        {"id": "3", "subject": "third"},
        {"id": "4", "subject": "fourth"},
    ]


def test_a_stray_quote_in_the_header_is_a_one_line_error(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text('id,"subject\n1,a\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"t.csv: the header row: .*line 1 do not pair up"):
        list(read_rows(path))


def test_jsonl_keeps_line_numbers_and_reports_broken_lines(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"id": 1}\n\n{"id": 2\n[1]\n{"id": 3}\n', encoding="utf-8")
    rows = list(read_rows(path))
    assert [(r.number, r.data) for r in rows if r.data] == [(1, {"id": 1}), (5, {"id": 3})]
    errors = {r.number: r.error for r in rows if r.error}
    assert errors[3].startswith("not valid JSON")
    assert errors[4] == "not a JSON object"


def test_json_array_embedded_list_records_path_and_ndjson_named_json(tmp_path):
    array = tmp_path / "a.json"
    array.write_text('[{"id": 1}, {"id": 2}]', encoding="utf-8")
    assert [r.data["id"] for r in read_rows(array)] == [1, 2]
    page = tmp_path / "page.json"
    page.write_text('{"_embedded": {"conversations": [{"id": 7}]}, "page": {"size": 50}}')
    assert [r.data["id"] for r in read_rows(page)] == [7]
    nested = tmp_path / "n.json"
    nested.write_text('{"data": {"tickets": [{"id": 9}]}, "other": [1]}')
    assert [r.data["id"] for r in read_rows(nested, records="data.tickets")] == [9]
    ndjson = tmp_path / "export.json"
    ndjson.write_text('{"id": 1}\n{"id": 2}\n')
    assert [r.data["id"] for r in read_rows(ndjson)] == [1, 2]


def test_xlsx_cells_read_as_a_person_sees_them(tmp_path):
    openpyxl = pytest.importorskip("openpyxl")
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["id", "created", "subject", "amount"])
    sheet.append([12.0, datetime(2024, 3, 1, 14, 5), "Zoë\nsecond line", 7.5])
    sheet.append([None, None, None, None])
    sheet.append([13, None, "short row"])
    path = tmp_path / "t.xlsx"
    book.save(path)
    rows = list(read_rows(path))
    assert [r.number for r in rows] == [2, 4]
    assert rows[0].data == {
        "id": "12",
        "created": "2024-03-01 14:05:00",
        "subject": "Zoë\nsecond line",
        "amount": "7.5",
    }
    assert rows[1].data["created"] == ""


def test_unknown_or_missing_files_are_one_line_errors(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        list(read_rows(tmp_path / "missing.csv"))
    old = tmp_path / "old.xls"
    old.write_bytes(b"\xd0\xcf")
    with pytest.raises(InputError, match="save it as .xlsx"):
        list(read_rows(old))


def test_helpers_for_mapping_init(tmp_path):
    assert cell_text(3.0) == "3" and cell_text(True) == "true" and cell_text(None) == ""
    flat = flatten({"id": 1, "via": {"channel": "email"}, "comments": [{"body": "x"}]})
    assert flat["via.channel"] == "email"
    assert flat["comments.0.body"] == "x"
    path = tmp_path / "t.jsonl"
    path.write_text("".join(f'{{"id": {i}}}\n' for i in range(10)))
    assert len(sample(path, rows=3)) == 3
