"""The tile delegate: what one tile shows (card, thumbnail, score badge, name), in both palettes,
with its cached parts following the state and the palette."""

from __future__ import annotations

from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QRect, QSize, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPalette, QPixmap, QStandardItem, QStandardItemModel
from PySide6.QtWidgets import QApplication, QStyle, QStyleOptionViewItem

from vector_studio_gui.gui.results_model import ResultsModel, load_thumbnails
from vector_studio_gui.gui.results_view import PAD, TileDelegate

GREEN = QColor(0, 160, 0)


def _model(thumb: QPixmap, *badges: str | None) -> QStandardItemModel:
    model = QStandardItemModel()
    for k, badge in enumerate(badges):
        it = QStandardItem(f"chart-{k}.png")
        it.setData(thumb, Qt.ItemDataRole.DecorationRole)
        it.setData(badge, ResultsModel.BadgeRole)
        model.appendRow(it)
    return model


def _thumb(w: int = 208, h: int = 117) -> QPixmap:
    img = QImage(w, h, QImage.Format.Format_RGB32)
    img.fill(GREEN)
    return QPixmap.fromImage(img)


def _paint(delegate: TileDelegate, model, row: int, palette: QPalette | None = None,
           selected: bool = False) -> tuple[QImage, QRect]:
    opt = QStyleOptionViewItem()
    opt.font = QApplication.font()
    opt.palette = palette or QApplication.palette()
    size = delegate.tile_size(opt.font)
    opt.rect = QRect(10, 10, size.width(), size.height())
    opt.state = QStyle.StateFlag.State_Enabled | (
        QStyle.StateFlag.State_Selected if selected else QStyle.StateFlag.State_None)
    img = QImage(size.width() + 20, size.height() + 20, QImage.Format.Format_ARGB32)
    img.fill(QColor(255, 0, 255))  # magenta: anything left of it is outside the card
    p = QPainter(img)
    delegate.paint(p, opt, model.index(row, 0))
    p.end()
    return img, QRect(opt.rect)


def _box(rect: QRect, delegate: TileDelegate) -> QRect:
    return QRect(rect.x() + PAD, rect.y() + PAD, delegate.thumb.width(), delegate.thumb.height())


def _dark() -> QPalette:
    pal = QPalette(QApplication.palette())
    pal.setColor(QPalette.ColorRole.Base, QColor(30, 30, 30))
    pal.setColor(QPalette.ColorRole.Text, QColor(230, 230, 230))
    pal.setColor(QPalette.ColorRole.Highlight, QColor(200, 120, 0))
    return pal


def test_a_tile_shows_its_thumbnail_score_and_name(qtbot):
    delegate = TileDelegate()
    model = _model(_thumb(), "0.997", "0.412")
    img, rect = _paint(delegate, model, 0)
    box = _box(rect, delegate)
    assert img.pixelColor(box.center()) == GREEN  # the thumbnail, centred in its box
    assert img.pixelColor(rect.x() + 4, rect.center().y()) != QColor(255, 0, 255)  # the card
    assert img.pixelColor(rect.x(), rect.y()) == QColor(255, 0, 255)  # rounded corner
    # the best result's badge is in the highlight colour, the others dark; both hold white text
    hl = QApplication.palette().color(QPalette.ColorRole.Highlight)
    best = [img.pixelColor(x, box.top() + 8) for x in range(box.right() - 60, box.right() - 3)]
    assert any(abs(c.hue() - hl.hue()) < 12 and c.saturation() > 80 for c in best)
    assert any(c.lightness() > 240 for c in best)
    other, _ = _paint(delegate, model, 1)
    row = [other.pixelColor(x, box.top() + 8) for x in range(box.right() - 60, box.right() - 3)]
    assert any(c.lightness() < 110 for c in row) and not any(
        abs(c.hue() - hl.hue()) < 12 and c.saturation() > 80 for c in row)
    # the file name is written under the thumbnail
    text_row = range(box.bottom() + 6, rect.bottom() - PAD)
    ink = [img.pixelColor(x, y).lightness() for x in range(box.left(), box.right())
           for y in text_row]
    assert min(ink) < 120


def test_no_badge_when_browsing_and_a_big_thumbnail_stays_in_its_box(qtbot):
    delegate = TileDelegate()
    model = _model(_thumb(600, 600), None)
    img, rect = _paint(delegate, model, 0)
    box = _box(rect, delegate)
    assert img.pixelColor(box.center()) == GREEN
    # square thumbnail in a wide box: centred, nothing painted beside it or under the name
    assert img.pixelColor(box.left() + 2, box.center().y()) != GREEN
    assert img.pixelColor(box.center().x(), box.bottom() + 3) != GREEN
    corner = img.pixelColor(box.right() - 10, box.top() + 8)
    assert corner != GREEN and corner.lightness() > 150  # no badge pill


def test_selection_and_palette_change_repaint_the_cached_card(qtbot):
    delegate = TileDelegate()
    model = _model(_thumb(), None)
    light, rect = _paint(delegate, model, 0)
    spot = (rect.x() + 4, rect.center().y())
    dark, _ = _paint(delegate, model, 0, _dark())
    assert light.pixelColor(*spot).lightness() > 180
    assert dark.pixelColor(*spot).lightness() < 90
    chosen, _ = _paint(delegate, model, 0, _dark(), selected=True)
    assert chosen.pixelColor(*spot) != dark.pixelColor(*spot)
    again, _ = _paint(delegate, model, 0)  # back to the light palette: not a stale dark card
    assert again.pixelColor(*spot) == light.pixelColor(*spot)


def _png(w: int, h: int) -> bytes:
    """A stored thumbnail of ``w`` x ``h`` pixels, as the library hands it out."""
    img = QImage(w, h, QImage.Format.Format_RGB32)
    img.fill(GREEN)
    raw = QByteArray()
    buf = QBuffer(raw)
    buf.open(QIODevice.OpenModeFlag.WriteOnly)
    img.save(buf, "PNG")
    buf.close()
    return bytes(raw.data())


def test_stretched_boxes_get_thumbnails_fitted_once_when_loaded(qtbot):
    data = _png(256, 144)
    for box in (QSize(288, 188), QSize(208, 136)):  # wider and narrower than the thumbnail
        out = load_thumbnails(lambda _id: data, [1], box, 1.0)[1]
        assert out.width() == box.width() and out.height() <= box.height()


def test_a_thumbnail_too_tall_for_the_box_is_fitted_when_loaded(qtbot):
    data = _png(256, 170)  # as wide as the box, taller
    out = load_thumbnails(lambda _id: data, [1], QSize(256, 167), 1.0)[1]
    assert out.height() == 167 and out.width() <= 256


def test_thumbnail_cache_stays_within_its_memory_budget_on_high_dpi_screens(qtbot):
    from vector_studio_gui.gui.results_model import CACHE_BYTES, cache_limit

    model = ResultsModel()
    box = QSize(288, 188)
    model.set_thumbnail_size(box, 2.0)  # a 2x screen: 576x376 pixels a thumbnail
    img = QImage(576, 324, QImage.Format.Format_RGB32)
    img.fill(GREEN)
    for start in range(0, 1200, 100):
        model.set_thumbnails({i: img for i in range(start, start + 100)})
    kept = len(model._pixmaps)
    assert kept == cache_limit(box, 2.0) < 1200
    assert kept * 576 * 376 * 4 <= CACHE_BYTES
    # the most recent thumbnails are the ones kept
    assert model.has_thumbnail(1199) and not model.has_thumbnail(0)


def test_cards_follow_the_window_losing_focus(qtbot):
    delegate = TileDelegate()
    model = _model(_thumb(), None)
    pal = QPalette(QApplication.palette())
    pal.setColor(QPalette.ColorGroup.Active, QPalette.ColorRole.Highlight, QColor(0, 0, 255))
    pal.setColor(QPalette.ColorGroup.Inactive, QPalette.ColorRole.Highlight, QColor(255, 160, 0))
    pal.setCurrentColorGroup(QPalette.ColorGroup.Active)
    active, rect = _paint(delegate, model, 0, pal, selected=True)
    pal.setCurrentColorGroup(QPalette.ColorGroup.Inactive)
    inactive, _ = _paint(delegate, model, 0, pal, selected=True)
    spot = (rect.x() + 4, rect.center().y())
    assert active.pixelColor(*spot).blue() > active.pixelColor(*spot).red()
    assert inactive.pixelColor(*spot).red() > inactive.pixelColor(*spot).blue()


def test_after_a_resize_thumbnails_stay_on_screen_until_reloaded_at_the_new_size(qtbot):
    from vector_studio_gui.core.types import Item

    model = ResultsModel()
    items = [Item(id=i, path=f"/c/{i}.png", paths=(f"/c/{i}.png",), content_hash=str(i), size=1,
                  width=1600, height=900, added=float(i), note="") for i in (1, 2)]
    model.set_items(model.begin_query(), items)
    small, big = QSize(208, 136), QSize(288, 188)

    def img(box: QSize) -> QImage:
        out = QImage(box.width(), round(box.width() * 9 / 16), QImage.Format.Format_RGB32)
        out.fill(GREEN)
        return out

    model.set_thumbnail_size(small, 1.0)
    model.set_thumbnails({1: img(small), 2: img(small)}, small, 1.0)
    wanted: list[list[int]] = []
    model.thumbnailsWanted.connect(wanted.append)
    model.set_thumbnail_size(big, 1.0)
    shown = model.data(model.index(0, 0), Qt.ItemDataRole.DecorationRole)
    assert shown.width() == 208  # the old thumbnail, not a grey placeholder
    assert not model.data(model.index(0, 0), ResultsModel.ThumbnailLoadedRole)
    qtbot.waitUntil(lambda: any(1 in w for w in wanted), timeout=2000)  # reloading at 288
    model.set_thumbnails({1: img(small)}, small, 1.0)  # a load for the old box, in flight
    assert not model.has_thumbnail(1)
    model.set_thumbnails({1: img(big)}, big, 1.0)
    assert model.has_thumbnail(1)
    assert model.data(model.index(0, 0), Qt.ItemDataRole.DecorationRole).width() == 288
